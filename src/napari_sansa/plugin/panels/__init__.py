"""The sections of the dock widget, one module each."""
