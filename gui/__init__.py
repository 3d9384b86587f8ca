"""The plugin's own panels (QGIS desktop only; the engine and Processing do not import this)."""
