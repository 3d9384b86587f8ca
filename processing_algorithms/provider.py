"""The Territory Planner Processing provider (id ``territory_planner``)."""

from __future__ import annotations

import contextlib
import os

from qgis.core import (
    QgsApplication,
    QgsMessageLog,
    QgsProcessingModelAlgorithm,
    QgsProcessingProvider,
)
from qgis.PyQt.QtGui import QIcon

from ..territory_planner_plugin import __version__
from .base import PROVIDER_ICON
from .build_road_network import BuildRoadNetworkAlgorithm
from .check_accounts import CheckAccountsAlgorithm
from .compare_plans import ComparePlansAlgorithm
from .design_territories import DesignTerritoriesAlgorithm
from .drive_time_catchments import DriveTimeCatchmentsAlgorithm
from .export_territories import ExportTerritoriesAlgorithm
from .rebalance_territories import RebalanceTerritoriesAlgorithm
from .size_territories import SizeTerritoriesAlgorithm
from .territory_report import TerritoryReportAlgorithm
from .travel_time_matrix import TravelTimeMatrixAlgorithm

ALGORITHMS = (
    BuildRoadNetworkAlgorithm,
    DriveTimeCatchmentsAlgorithm,
    TravelTimeMatrixAlgorithm,
    CheckAccountsAlgorithm,
    DesignTerritoriesAlgorithm,
    RebalanceTerritoriesAlgorithm,
    SizeTerritoriesAlgorithm,
    ExportTerritoriesAlgorithm,
    TerritoryReportAlgorithm,
    ComparePlansAlgorithm,
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
        self._models = load_models()
        for model in self._models:
            self.addAlgorithm(model)

    def load(self) -> bool:
        # The models' steps are this provider's algorithms, which the registry only knows once
        # load() has returned: relink the models then (as QGIS's own model provider does).
        QgsApplication.processingRegistry().providerAdded.connect(self._relink_models)
        return super().load()

    def unload(self) -> None:
        with contextlib.suppress(TypeError, RuntimeError):  # never connected
            QgsApplication.processingRegistry().providerAdded.disconnect(self._relink_models)
        super().unload()

    def _relink_models(self, provider_id: str) -> None:
        if provider_id != self.id():
            return
        for model in getattr(self, "_models", ()):
            model.loadVariant(model.toVariant())  # re-attaches the steps, adds the outputs


MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")
MODEL_NAMES = {"territory_plan": "Territory plan: network to report and export (model)"}


class ShippedModel(QgsProcessingModelAlgorithm):
    """A model from ``models/*.model3``: id ``territory_planner:<model name>``, readable title.

    QgsProcessingModelAlgorithm uses its name as display name; the name is the id, so it is kept
    short and the title comes from MODEL_NAMES.
    """

    def displayName(self) -> str:
        return MODEL_NAMES.get(self.name(), self.name())

    def createInstance(self):
        # No source file on copies: 'Save' in the Model Designer then asks for a new file instead
        # of overwriting the plugin's model (which a plugin update would replace anyway).
        clone = ShippedModel()
        clone.loadVariant(self.toVariant())
        return clone


def load_models(folder: str = MODELS_DIR) -> list:
    """The Processing models shipped in ``models/`` (Model Builder files, ``*.model3``)."""
    models = []
    if not os.path.isdir(folder):
        return models
    for filename in sorted(os.listdir(folder)):
        if not filename.endswith(".model3"):
            continue
        model = ShippedModel()
        if not model.fromFile(os.path.join(folder, filename)) or not model.name():
            QgsMessageLog.logMessage(f"Could not load the model {filename}", "Territory Planner")
            continue
        models.append(model)
    return models
