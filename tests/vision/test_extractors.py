import pytest
import torch

from recbackdoor.errors import UserError
from recbackdoor.victims.vision.extractors import ArchSpec, build_extractor, load_extractor, save_extractor


@pytest.mark.parametrize("arch", ["alexnet", "resnet"])
def test_safetensors_round_trip_gives_identical_features(tmp_path, arch):
    spec = ArchSpec(arch=arch, width=8)
    model = build_extractor(spec, seed=3).eval()
    path = tmp_path / "m.safetensors"
    save_extractor(model, spec, path)
    loaded, got = load_extractor(path, arch=arch)
    x = torch.rand(4, 1, 28, 28)
    assert got == spec
    assert torch.equal(model.features(x), loaded.features(x))
    assert model.features(x).shape == (4, model.feature_dim)


def test_not_safetensors_is_one_line_error(tmp_path):
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(b"\x80\x04\x95 pickle bytes, not safetensors")
    with pytest.raises(UserError, match="not a readable safetensors file") as err:
        load_extractor(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)


def test_truncated_file_is_reported(tmp_path):
    spec = ArchSpec(width=8)
    path = tmp_path / "m.safetensors"
    save_extractor(build_extractor(spec), spec, path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_extractor(path)


def test_wrong_shapes_name_the_tensor(tmp_path):
    from safetensors.torch import save_file

    spec = ArchSpec(width=8)
    state = {k: torch.zeros(v.shape) for k, v in build_extractor(spec).state_dict().items()}
    first = next(iter(state))
    state[first] = torch.zeros(3, 3)
    path = tmp_path / "m.safetensors"
    save_file(state, str(path), metadata={"recbackdoor_arch": '{"arch": "alexnet", "width": 8}'})
    with pytest.raises(UserError, match=f"tensor '{first}' has shape"):
        load_extractor(path)


def test_arch_mismatch_is_reported(tmp_path):
    spec = ArchSpec(arch="resnet", width=8)
    path = tmp_path / "m.safetensors"
    save_extractor(build_extractor(spec), spec, path)
    with pytest.raises(UserError, match="--arch 'alexnet' but the file header says 'resnet'"):
        load_extractor(path, arch="alexnet")


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_extractor(tmp_path / "nope.safetensors")
