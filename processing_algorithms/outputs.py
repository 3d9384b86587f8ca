"""All-or-nothing outputs: every output path is checked before a run and restored after a failure.

``guard_outputs(alg, parameters, context)`` is used by ``base.engine_run`` around every
``processAlgorithm``. Before any work it refuses an output whose folder is missing or not writable,
or that would overwrite one of the run's input files. It keeps a copy of each file an output would
replace, and when the run fails or is cancelled it removes what the run wrote there and puts the
copies back, so a failed run leaves nothing new behind and the previous files intact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
    QgsProcessingUtils,
)

# files that belong to a data set named by its main file (shapefile parts, styles, GPKG journals)
_SIDE_SUFFIXES = (".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qml", ".qmd",
                  "-wal", "-shm", "-journal", ".aux.xml", ".csvt")  # fmt: skip
_DESTINATIONS = (
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterRasterDestination,
)


@contextlib.contextmanager
def guard_outputs(alg: QgsProcessingAlgorithm, parameters: dict, context) -> Iterator[None]:
    """Check the output paths of ``alg``, then run the body; on any failure restore them."""
    outputs = output_paths(alg, parameters, context)
    inputs = input_paths(alg, parameters, context)
    for key, path in outputs.items():
        check_output_path(key, path, inputs)
    backup = tempfile.mkdtemp(prefix="territory_planner_outputs_")
    try:
        saved = _save(outputs.values(), backup)
        try:
            yield
        except BaseException:
            _restore(outputs.values(), saved)
            raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)


def output_paths(alg: QgsProcessingAlgorithm, parameters: dict, context) -> dict[str, Path]:
    """{parameter key: file} of the outputs that name a file (temporary outputs and database or
    memory destinations are skipped)."""
    out: dict[str, Path] = {}
    temp_root = Path(QgsProcessingUtils.tempFolder()).resolve()
    for definition in _definitions(alg):
        if not isinstance(definition, _DESTINATIONS):
            continue
        value = parameters.get(definition.name())
        if isinstance(value, QgsProcessingOutputLayerDefinition):
            value = value.sink.staticValue()
        if value is None or not isinstance(value, str):
            continue
        path = _file_of(value)
        if path is None:
            continue
        with contextlib.suppress(OSError, ValueError):
            if path.resolve().is_relative_to(temp_root):
                continue  # TEMPORARY_OUTPUT and friends
        out[definition.name()] = path
    return out


def input_paths(alg: QgsProcessingAlgorithm, parameters: dict, context) -> set[Path]:
    """Files the run reads: every non-output parameter value that names an existing file, and
    the sources of layers given by id or as project layers."""
    found: set[Path] = set()
    for definition in _definitions(alg):
        if isinstance(definition, _DESTINATIONS):
            continue
        value = parameters.get(definition.name())
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            source = getattr(item, "source", None)
            if source is not None and hasattr(source, "staticValue"):
                item = source.staticValue()  # QgsProcessingFeatureSourceDefinition
            if not isinstance(item, str) or not item:
                continue
            candidates = [item]
            layer = (
                QgsProcessingUtils.mapLayerFromString(item, context) if "/" not in item else None
            )
            if layer is not None:
                candidates.append(layer.source())
            for candidate in candidates:
                path = _file_of(candidate)
                if path is not None and path.exists():
                    with contextlib.suppress(OSError):
                        found.add(path.resolve())
    return found


def check_output_path(key: str, path: Path, inputs: set[Path]) -> None:
    """Refuse an output whose folder is missing or read-only, or that is one of the inputs."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        msg = f"{key}: the folder {folder} does not exist; create it or choose another path."
        raise QgsProcessingException(msg)
    if path.is_dir():
        msg = f"{key}: {path} is a folder; give a file name such as {path / 'output.gpkg'}."
        raise QgsProcessingException(msg)
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        msg = f"{key}: {path} cannot be written here (permission denied); choose another path."
        raise QgsProcessingException(msg)
    with contextlib.suppress(OSError):
        if path.resolve() in inputs:
            msg = (f"{key}: {path} is one of this run's inputs and would be overwritten; write the "
                   "output to another file.")  # fmt: skip
            raise QgsProcessingException(msg)


def _definitions(alg: QgsProcessingAlgorithm) -> list:
    """The algorithm's parameter definitions (none for a bare object with a processAlgorithm)."""
    definitions = getattr(alg, "parameterDefinitions", None)
    return list(definitions()) if callable(definitions) else []


def _file_of(value: str) -> Path | None:
    """The file named by an output or layer string ('x.gpkg', 'x.gpkg|layername=a',
    "ogr:dbname='x.gpkg' table=..."), None for memory, database and temporary destinations."""
    text = value.strip()
    if not text or text in ("TEMPORARY_OUTPUT", "memory:") or text.startswith("memory:"):
        return None
    if text.startswith("ogr:"):
        rest = text[4:]
        if "dbname=" not in rest:
            return None
        rest = rest.split("dbname=", 1)[1].strip()
        quote = rest[0] if rest[:1] in ("'", '"') else None
        text = rest[1:].split(quote, 1)[0] if quote else rest.split(" ", 1)[0]
    elif ":" in text.split("|", 1)[0][2:] and not os.path.isabs(text):
        return None  # provider URIs such as postgres:... (drive letters are allowed)
    text = text.split("|", 1)[0]
    return Path(text) if text else None


def _family(path: Path) -> list[Path]:
    """The file and its side files (shapefile parts, .qml, GeoPackage journals)."""
    files = [path]
    stem = path.with_suffix("")
    for suffix in _SIDE_SUFFIXES:
        files.append(
            Path(str(stem) + suffix) if suffix.startswith(".") else Path(str(path) + suffix)
        )
    return files


def _save(paths, backup: str) -> dict[Path, Path | None]:
    """Copy every existing file of the outputs' families to ``backup``: {file: copy or None}."""
    saved: dict[Path, Path | None] = {}
    for n, path in enumerate(paths):
        for m, file in enumerate(_family(path)):
            if file in saved:
                continue
            if file.is_file():
                copy = Path(backup) / f"{n}_{m}_{file.name}"
                shutil.copy2(file, copy)
                saved[file] = copy
            else:
                saved[file] = None
    return saved


def _restore(paths, saved: dict[Path, Path | None]) -> None:
    """Remove what the run wrote at the outputs and put the saved files back."""
    for path in paths:
        for file in _family(path):
            with contextlib.suppress(OSError):
                if file.is_file() or file.is_symlink():
                    file.unlink()
    for file, copy in saved.items():
        if copy is not None:
            with contextlib.suppress(OSError):
                shutil.copy2(copy, file)
