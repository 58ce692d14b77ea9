"""Typed options: one frozen dataclass per config section, with exactly the schema's keys."""

import dataclasses
import typing
from pathlib import Path

import pytest

from dvp_pipeline.config import schema
from dvp_pipeline.errors import DVPError
from dvp_pipeline.options import SECTIONS, Options, PipelineOptions, ReportOptions, SegmentOptions

ROOT = Path(__file__).parent.parent


def _fields(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_each_class_has_exactly_the_schema_keys_and_no_defaults(section):
    def check(cls, properties, where):
        fields = _fields(cls)
        assert set(fields) == set(properties), where
        for name, field in fields.items():
            # defaults live in the schema alone
            assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING, name
            if "properties" in properties[name]:
                nested = typing.get_type_hints(cls)[name]
                check(nested, properties[name]["properties"], f"{where}.{name}")

    check(SECTIONS[section], schema("config.schema.yaml")["properties"][section]["properties"], section)


def test_defaults_come_from_the_schema_and_options_are_frozen():
    report = ReportOptions.from_mapping({"dpi": 150})
    defaults = schema("config.schema.yaml")["properties"]["report"]["properties"]
    assert report.dpi == 150 and report.top_sets == defaults["top_sets"]["default"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.dpi = 10
    segment = SegmentOptions.from_mapping({"classical": {"threshold": "li"}})
    assert segment.method_options.threshold == "li" and segment.cellpose.batch_size is None
    assert segment.to_dict()["classical"]["threshold"] == "li"


def test_bad_values_name_the_source_and_key():
    with pytest.raises(DVPError, match=r"--options: report.dpi: 'high' is not of type 'integer'"):
        ReportOptions.from_mapping({"dpi": "high"}, source="--options")
    with pytest.raises(DVPError, match="unknown key 'dpii'"):
        ReportOptions.from_mapping({"dpii": 3})


def test_pipeline_options_from_a_validated_config():
    from dvp_pipeline.config import load_config

    options = PipelineOptions.from_config(load_config(ROOT / "config" / "config.yaml"))
    assert all(isinstance(getattr(options, name), Options) for name in SECTIONS)
    assert options.differential.contrasts == [["TEN", "MPR"]]
