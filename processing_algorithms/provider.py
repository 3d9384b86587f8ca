"""The Territory Planner Processing provider (id ``territory_planner``)."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..territory_planner_plugin import __version__
from .base import PROVIDER_ICON
from .build_road_network import BuildRoadNetworkAlgorithm
from .design_territories import DesignTerritoriesAlgorithm
from .drive_time_catchments import DriveTimeCatchmentsAlgorithm
from .export_territories import ExportTerritoriesAlgorithm
from .territory_report import TerritoryReportAlgorithm
from .travel_time_matrix import TravelTimeMatrixAlgorithm

ALGORITHMS = (
    BuildRoadNetworkAlgorithm,
    DriveTimeCatchmentsAlgorithm,
    TravelTimeMatrixAlgorithm,
    DesignTerritoriesAlgorithm,
    ExportTerritoriesAlgorithm,
    TerritoryReportAlgorithm,
)


class TerritoryPlannerProvider(QgsProcessingProvider):
    """Lists the Territory Planner algorithms in the Processing Toolbox."""

    def id(self) -> str:
        return "territory_planner"

    def name(self) -> str:
        return "Territory Planner"

    def longName(self) -> str:
        return f"Territory Planner {__version__}"

    def versionInfo(self) -> str:
        return __version__

    def icon(self) -> QIcon:
        return QIcon(PROVIDER_ICON)

    def svgIconPath(self) -> str:
        return PROVIDER_ICON

    def loadAlgorithms(self) -> None:
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
