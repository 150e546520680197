"""The widget's Qt-free core: what a run works on, its background job, settings and run records."""
