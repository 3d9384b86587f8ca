"""The QGIS plugin objects: the real one registers the Processing provider; the fallback
explains which Python packages are missing."""

from __future__ import annotations

import html
import sys

from qgis.core import Qgis, QgsApplication, QgsMessageLog

LOG_TAG = "Territory Planner"


class TerritoryPlannerPlugin:
    """Registers the Territory Planner Processing provider (GUI and qgis_process)."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider = None
        self.editor = None

    def initProcessing(self) -> None:
        """Add the provider once (QGIS calls this for qgis_process, initGui for the desktop)."""
        if self.provider is not None:
            return
        from .processing_algorithms.provider import TerritoryPlannerProvider

        provider = TerritoryPlannerProvider()
        # addProvider fails when the id is already registered (e.g. a second copy of the plugin);
        # then keep no reference, so unload() cannot remove the other copy's provider.
        if QgsApplication.processingRegistry().addProvider(provider):
            self.provider = provider

    def initGui(self) -> None:
        self.initProcessing()
        try:  # the Territory editor panel: menu item, toolbar button, offer after a run
            from .gui.territory_editor import EditorEntry

            self.editor = EditorEntry(self.iface)
        except Exception as err:  # start-up must never fail
            QgsMessageLog.logMessage(
                f"Territory editor not available: {err}", LOG_TAG, Qgis.Warning
            )

    def unload(self) -> None:
        if self.editor is not None:
            self.editor.unload()
            self.editor = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None


class MissingDependenciesPlugin:
    """Stands in when packages are missing: registers nothing and tells the user why."""

    def __init__(self, iface, message: str, command: str = "") -> None:
        self.iface = iface
        self.message = message
        self.command = command
        self.provider = None
        self._reported = False

    def _report(self) -> None:
        if self._reported:
            return
        self._reported = True
        # the log panel and the message bar read HTML: "PuLP<4" must stay text
        QgsMessageLog.logMessage(_html(self.message), LOG_TAG, Qgis.Warning)
        if self.iface is None:  # qgis_process: no message bar, say it on stderr
            print(self.message, file=sys.stderr)

    def initProcessing(self) -> None:
        self._report()

    def initGui(self) -> None:
        self._report()
        try:
            bar = self.iface.messageBar()
            text = self.message.splitlines()[0]
            if self.command:
                text += f" Install them. {self.command}. Then restart QGIS."
            text += f" Details: View > Panels > Log Messages ({LOG_TAG})."
            bar.pushMessage(LOG_TAG, html.escape(text, quote=True), Qgis.Warning, 0)
        except Exception as err:  # start-up must never fail
            QgsMessageLog.logMessage(f"Could not show the message bar: {err}", LOG_TAG, Qgis.Info)

    def unload(self) -> None:
        """Nothing was registered, nothing to remove."""


def _html(text: str) -> str:
    """Plain text as HTML: special characters escaped, line breaks kept."""
    return html.escape(text, quote=True).replace("\n", "<br>")
