"""File formats and stores, shared by the CLI, the cluster runner and the widget."""
