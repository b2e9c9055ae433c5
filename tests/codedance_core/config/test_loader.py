"""Loading profiles: strict validation with dotted paths, overrides, stable digests."""

from __future__ import annotations

from pathlib import Path

import pytest

from codedance_core.config import ConfigError, dump_profile, load_profile
from codedance_core.config.loader import apply_override
from codedance_core.config.profile import STAGE_SECTIONS


@pytest.mark.parametrize("name", ["tiny", "paper"])
def test_shipped_profiles_validate(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    for stage in STAGE_SECTIONS:
        assert len(profile.stage_digest(stage)) == 64


def test_unknown_key_fails_with_its_dotted_path() -> None:
    with pytest.raises(ConfigError) as caught:
        load_profile("tiny", ["store.bucket_name=x"])
    assert "store.bucket_name: unknown key" in str(caught.value)


def test_bad_value_fails_with_its_dotted_path() -> None:
    with pytest.raises(ConfigError, match=r"seed: Input should be a valid integer"):
        load_profile("tiny", ["seed=many"])


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known profiles: .*tiny"):
        load_profile("huge")


def test_overrides_parse_yaml_scalars() -> None:
    tree: dict = {}
    apply_override(tree, "a.b=5")
    apply_override(tree, "a.c=true")
    apply_override(tree, "d=[x, y]")
    assert tree == {"a": {"b": 5, "c": True}, "d": ["x", "y"]}
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_override(tree, "novalue")


def test_digest_ignores_key_order_and_formatting(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("name: t\nseed: 3\nstore: {root: /tmp/s}\n")
    b.write_text("# same values, other layout\nstore:\n  root: /tmp/s\nseed: 3\nname: t\n")
    assert load_profile(a).digest() == load_profile(b).digest()
    assert load_profile(a, ["seed=4"]).digest() != load_profile(a).digest()


def test_dump_round_trips(tmp_path: Path) -> None:
    profile = load_profile("tiny")
    path = tmp_path / "dumped.yaml"
    path.write_text(dump_profile(profile))
    assert load_profile(path) == profile


def test_not_a_mapping_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_profile(path)


def test_broken_yaml_names_the_file_and_the_place(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: 3\nstore: {root: /tmp/s\n")
    with pytest.raises(ConfigError) as caught:
        load_profile(broken)
    message = str(caught.value)
    assert message.startswith(f"{broken}, line 3, column 1: not valid YAML") and "\n" not in message
