"""ConverterConfig: the fork's names and defaults, enum parsing, validation, JSON."""

import dataclasses
import json

import pytest

from converter.config import (
    ColorCorrectionType,
    ConverterConfig,
    ImageOutputType,
    SegmentationType,
    TransformDirection,
)
from faceswap_gan.faces.masks import FACE_PARTS


def test_defaults_are_the_forks():
    config = ConverterConfig()
    assert config.image_shape is None and config.image_size is None  # the model's
    assert (
        config.use_smoothed_bbox,
        config.use_kalman_filter,
        config.use_auto_downscaling,
    ) == (True, True, False)
    assert config.bbox_moving_avg_coef == 0.65
    assert config.min_face_area == 35 * 35
    assert config.kf_noise_coef == 1e-3
    assert config.color_correction is ColorCorrectionType.HISTMATCH
    assert config.detection_threshold == 0.8
    assert config.roi_coverage == 0.9
    assert config.enhance == 0.0
    assert config.output_type is ImageOutputType.TRIPLE
    assert config.direction is TransformDirection.AtoB
    assert config.segmentation is SegmentationType.ALL
    assert config.watermark is True


def test_readme_example_constructs():
    config = ConverterConfig(
        image_shape=(64, 64, 3),
        use_smoothed_bbox=True,
        use_kalman_filter=True,
        use_auto_downscaling=False,
        bbox_moving_avg_coef=0.65,
        min_face_area=35 * 35,
        kf_noise_coef=1e-3,
        color_correction=ColorCorrectionType.HISTMATCH,
        detection_threshold=0.8,
        roi_coverage=0.9,
        enhance=0.0,
        output_type=ImageOutputType.COMBINED,
        direction=TransformDirection.AtoB,
        segmentation=SegmentationType.EYES_ONLY,
    )
    assert config.segmentation.parts == ("eyes",)


def test_enum_values_and_members():
    assert [(m.name, m.value) for m in ImageOutputType] == [
        ("SINGLE", 0),
        ("COMBINED", 1),
        ("TRIPLE", 3),
    ]
    assert {m.name for m in ColorCorrectionType} == {
        "NONE",
        "ADAIN",
        "ADAIN_XYZ",
        "HISTMATCH",
    }
    assert {m.name for m in TransformDirection} == {"AtoB", "BtoA"}
    assert len(SegmentationType) == 11


def test_every_segmentation_maps_to_face_parts():
    for member in SegmentationType:
        assert member.parts and set(member.parts) <= set(FACE_PARTS)
        words = member.name.replace("_ONLY", "").split("_AND_")
        if member is SegmentationType.ALL:
            assert set(member.parts) == set(FACE_PARTS)
        else:
            assert sorted(member.parts) == sorted(w.lower() for w in words)


@pytest.mark.parametrize(
    "text, member",
    [
        ("histmatch", ColorCorrectionType.HISTMATCH),
        ("hist_match", ColorCorrectionType.HISTMATCH),
        ("ADAIN_XYZ", ColorCorrectionType.ADAIN_XYZ),
        ("none", ColorCorrectionType.NONE),
    ],
)
def test_strings_name_members_case_insensitively(text, member):
    assert ConverterConfig(color_correction=text).color_correction is member


def test_strings_for_every_enum_field():
    config = ConverterConfig(
        output_type="single",
        direction="btoa",
        segmentation="eyes-and-mouth",
        image_shape=128,
    )
    assert config.output_type is ImageOutputType.SINGLE
    assert config.direction is TransformDirection.BtoA
    assert config.segmentation is SegmentationType.EYES_AND_MOUTH
    assert config.image_shape == (128, 128, 3) and config.image_size == 128


def test_json_round_trip(tmp_path):
    config = ConverterConfig(
        image_shape=(128, 128, 3),
        output_type="combined",
        color_correction="adain",
        segmentation="MOUTH_ONLY",
        enhance=0.2,
        watermark=False,
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert data["output_type"] == "COMBINED" and data["image_shape"] == [128, 128, 3]
    assert ConverterConfig.from_dict(data) == config
    config.to_json(tmp_path / "c.json")
    assert ConverterConfig.from_json(tmp_path / "c.json") == config


def test_frozen_and_replace():
    config = ConverterConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.enhance = 0.3
    assert dataclasses.replace(config, enhance=0.3).enhance == 0.3


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("roi_coverage", 1.0, "(0, 1)"),
        ("roi_coverage", 0.0, "(0, 1)"),
        ("bbox_moving_avg_coef", 1.5, "[0, 1]"),
        ("detection_threshold", 0.0, "(0, 1]"),
        ("kf_noise_coef", 0.0, "(0, inf)"),
        ("enhance", -0.1, "[0, 1]"),
        ("min_face_area", -1, "[0, inf)"),
    ],
)
def test_out_of_range_values_say_the_range(field, value, allowed):
    with pytest.raises(ValueError, match=field) as error:
        ConverterConfig(**{field: value})
    assert allowed in str(error.value)


def test_bad_values_raise_with_allowed_choices():
    with pytest.raises(ValueError, match="HISTMATCH"):
        ConverterConfig(color_correction="sepia")
    with pytest.raises(ValueError, match="TRIPLE"):
        ConverterConfig(output_type=2)
    with pytest.raises(ValueError, match="64, 128, 256"):
        ConverterConfig(image_shape=(96, 96, 3))
    with pytest.raises(ValueError, match="True or False"):
        ConverterConfig(watermark="yes")
    with pytest.raises(ValueError, match="Unknown ConverterConfig fields"):
        ConverterConfig.from_dict({"roi": 0.9})


def test_from_json_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        ConverterConfig.from_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        ConverterConfig.from_json(tmp_path / "bad.json")
