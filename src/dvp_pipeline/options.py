"""Typed options: one frozen dataclass per config section, built once after schema validation.

The JSON Schema (``schemas/config.schema.yaml``) is the single place where a key, its type and its
default are defined; these classes only give the validated values names and types, so code reads
``options.dpi`` and never ``options.get("dpi", 100)``. Build them with :meth:`Options.from_mapping`
(a config section as written by a user: missing keys take the schema's defaults, wrong ones raise
:class:`~dvp_pipeline.errors.DVPError`). A test checks that every class has exactly the schema's keys.

Examples
--------
>>> from dvp_pipeline.options import ReportOptions
>>> ReportOptions.from_mapping({"dpi": 150}).dpi
150
>>> ReportOptions.from_mapping({}).top_sets  # the schema's default
15
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from dvp_pipeline.config import schema, section_options

__all__ = [
    "CellposeOptions",
    "ClassicalOptions",
    "ClassifyOptions",
    "DifferentialOptions",
    "MzMLOptions",
    "Options",
    "PathwaysOptions",
    "PipelineOptions",
    "QuantifyOptions",
    "ReportOptions",
    "SECTIONS",
    "SegmentOptions",
    "SelectOptions",
    "CalibrationOptions",
    "OrientationOptions",
    "PlateOptions",
    "SupervisedOptions",
    "schema_default",
    "section",
]


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of the section classes: construction from a mapping and back."""

    #: The config section this class types (``None`` for nested groups, built by their parent).
    SECTION: ClassVar[str | None] = None

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None = None, *, source: str = "options") -> Self:
        """Validate a config section against the schema (filling defaults) and type it.

        ``source`` names where the mapping came from, for error messages (a file, ``--options``).
        """
        if cls.SECTION is None:
            raise TypeError(f"{cls.__name__} is a nested group; build its section's class instead")
        values = section_options(copy.deepcopy(dict(mapping or {})), cls.SECTION, source=source)
        return cls.from_validated(values)

    @classmethod
    def from_validated(cls, values: Mapping[str, Any]) -> Self:
        """Type a section that the schema has already validated and filled (no second validation)."""
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for field in dataclasses.fields(cls):
            value = values.get(field.name)
            nested = hints[field.name]
            if isinstance(nested, type) and issubclass(nested, Options):
                value = nested.from_validated(value or {})
            kwargs[field.name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The section as plain JSON-ready data (nested groups as mappings)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ClassicalOptions(Options):
    """``segment.classical``: the model-free nucleus and cell segmentation."""

    smoothing_sigma_um: float
    threshold: str | float
    nucleus_diameter_um: float
    min_nucleus_area_um2: float
    cell_expansion_um: float
    membrane_channel: str | None
    cytoplasm_channel: str | None
    background_radius_um: float | None
    seeds: str | None
    min_snr: float


@dataclasses.dataclass(frozen=True)
class CellposeOptions(Options):
    """``segment.cellpose``: Cellpose 3 or 4."""

    model: str | None
    cytoplasm_channel: str | None
    diameter_um: float | None
    flow_threshold: float
    cellprob_threshold: float
    gpu: bool
    batch_size: int | None


@dataclasses.dataclass(frozen=True)
class SegmentOptions(Options):
    """``segment``: method, tiling and the neighbourhood radius."""

    SECTION: ClassVar[str] = "segment"
    method: str
    tile_size: int
    overlap_um: float
    tiles_as_jobs: bool
    neighbourhood_radius_um: float
    workers: int | None
    classical: ClassicalOptions
    cellpose: CellposeOptions

    @property
    def method_options(self) -> ClassicalOptions | CellposeOptions:
        """The options of the chosen method."""
        return getattr(self, self.method)


@dataclasses.dataclass(frozen=True)
class SupervisedOptions(Options):
    """``classify.supervised``: the random-forest classifier."""

    annotations: str | None
    model: str | None
    features: list[str] | None
    n_estimators: int
    cv_folds: int
    seed: int


@dataclasses.dataclass(frozen=True)
class ClassifyOptions(Options):
    """``classify``: gating rules or a supervised classifier."""

    SECTION: ClassVar[str] = "classify"
    method: str
    supervised: SupervisedOptions
    transform: str
    cofactor: float | None
    threshold_method: str
    thresholds: dict[str, float]
    cell_types: list[dict[str, Any]]

    @property
    def type_names(self) -> list[str]:
        """The cell-type names of the rules, in rule order."""
        return [rule["name"] for rule in self.cell_types]


@dataclasses.dataclass(frozen=True)
class CalibrationOptions(Options):
    """``select.calibration``: the three marks the operator finds on the slide."""

    points: list[list[float]] | None
    units: str
    image_corners: bool


@dataclasses.dataclass(frozen=True)
class OrientationOptions(Options):
    """``select.orientation``: the LMD stage frame against the image."""

    rotate: int
    flip_x: bool
    flip_y: bool


@dataclasses.dataclass(frozen=True)
class PlateOptions(Options):
    """``select.plate``: the collection plates of the cohort's pools."""

    format: int
    fill: str
    excluded_wells: list[str] | None
    blank_fraction: float
    run_prefix: str


@dataclasses.dataclass(frozen=True)
class SelectOptions(Options):
    """``select``: which cells are pooled and cut, their shapes, calibration, orientation and plates."""

    SECTION: ClassVar[str] = "select"
    cell_types: list[str] | None
    pool_area_um2: float | None
    pool_tolerance: float
    pools_per_type: int
    max_cells_per_pool: int
    min_area_um2: float
    exclude_border: bool
    exclude_touching: bool
    region_classes: list[str] | None
    dilation_um: float
    erosion_um: float
    max_area_change: float
    min_shape_area_um2: float
    cutting_order: str
    controls: bool
    seed: int
    calibration: CalibrationOptions
    orientation: OrientationOptions
    plate: PlateOptions


@dataclasses.dataclass(frozen=True)
class MzMLOptions(Options):
    """``quantify.mzml``: MS1 quantification of identified precursors."""

    fdr: float
    score: str | None
    higher_is_better: bool | None
    ppm: float
    rt_window: float
    isotopes: int


@dataclasses.dataclass(frozen=True)
class QuantifyOptions(Options):
    """``quantify``: the search-engine input, its filters and the protein quantification."""

    SECTION: ClassVar[str] = "quantify"
    report: str | None
    format: str
    quantity: str | None
    precursor_q: float
    protein_q: float
    match_between_runs: bool
    decoy_pattern: str
    contaminant_pattern: str
    duplicate_ions: str
    min_precursors: int
    method: str
    top_n: int
    normalize: str
    normalize_within: str
    spectra: list[str] | None
    identifications: list[str] | None
    mzml: MzMLOptions

    @property
    def source(self) -> str:
        """The input as named in messages: the report, or the mzML files."""
        return self.report if self.format != "mzml" else ", ".join(self.spectra or [])


@dataclasses.dataclass(frozen=True)
class DifferentialOptions(Options):
    """``differential``: contrasts, filters, normalisation, imputation, design and eBayes."""

    SECTION: ClassVar[str] = "differential"
    contrasts: list[list[str]]
    interactions: list[list[str]]
    min_valid_per_group: int
    min_valid_fraction: float | None
    valid_in: str
    normalize: str
    impute: str
    impute_width: float
    impute_shift: float
    seed: int
    covariates: list[str]
    replicates: str
    trend: bool
    robust: bool


@dataclasses.dataclass(frozen=True)
class PathwaysOptions(Options):
    """``pathways``: gene-set collections, tests and per-run scores."""

    SECTION: ClassVar[str] = "pathways"
    gene_sets: list[str]
    min_set_size: int
    max_set_size: int
    inter_gene_cor: float | None
    group_genes: str
    duplicates: str
    methods: list[str]
    ora_fdr: float
    gsea_permutations: int
    seed: int
    scores: str
    scores_remove_covariates: bool
    highlight: list[str]


@dataclasses.dataclass(frozen=True)
class ReportOptions(Options):
    """``report``: titles, figure sizes and the cut-offs the pages show."""

    SECTION: ClassVar[str] = "report"
    title: str
    dpi: int
    thumbnail_px: int
    preview_px: int
    fdr: float
    top_proteins: int
    top_sets: int
    gallery_cells: int
    gallery_crop_px: int


#: Section name -> its options class.
SECTIONS: dict[str, type[Options]] = {
    cls.SECTION: cls
    for cls in (
        SegmentOptions,
        ClassifyOptions,
        SelectOptions,
        QuantifyOptions,
        DifferentialOptions,
        PathwaysOptions,
        ReportOptions,
    )
}


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
    """Every stage's typed options of one validated config (see :attr:`dvp_pipeline.config.Project.options`)."""

    segment: SegmentOptions
    classify: ClassifyOptions
    select: SelectOptions
    quantify: QuantifyOptions
    differential: DifferentialOptions
    pathways: PathwaysOptions
    report: ReportOptions

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PipelineOptions:
        """Type an already validated config (defaults filled by :func:`dvp_pipeline.config.load_config`)."""
        return cls(**{name: SECTIONS[name].from_validated(config[name]) for name in SECTIONS})


def schema_default(section: str, key: str) -> Any:
    """The schema's default of ``section.key``: for code that offers a default outside a config.

    >>> schema_default("quantify", "precursor_q")
    0.01
    """
    return copy.deepcopy(schema("config.schema.yaml")["properties"][section]["properties"][key]["default"])


def section(name: str, mapping: Mapping[str, Any] | None = None, *, source: str = "options") -> Options:
    """The typed options of config section ``name`` (e.g. ``"segment"``) from a mapping."""
    return SECTIONS[name].from_mapping(mapping, source=source)
