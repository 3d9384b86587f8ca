"""Territory Planner engine: road networks, catchments, matrices and territory design.

Plain Python on geopandas, shapely, scipy, osmnx and pulp. Nothing here imports ``qgis``;
the Processing wrappers in ``processing_algorithms`` convert layers and call these modules.
"""

__version__ = "0.2.0"
