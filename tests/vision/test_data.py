import numpy as np
import pytest

from recbackdoor.data import fashion_mnist as fm
from recbackdoor.data.image_folder import load_image_folder, load_interactions
from recbackdoor.data.interactions import SimulatorSettings, leave_one_out, simulate
from recbackdoor.errors import UserError


def test_missing_files_error_names_files_folder_and_source(tmp_path):
    (tmp_path / "fashion-mnist").mkdir()
    with pytest.raises(UserError) as err:
        fm.check_files(tmp_path)
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "fashion-mnist") in msg
    assert fm.SOURCE_URL in msg and "\n" not in msg


def test_real_files_match_official_sha256(fmnist_small):
    sums = fm.checksums()
    assert sums["fashion-mnist/t10k-labels-idx1-ubyte.gz"] == fm.FILES["t10k-labels-idx1-ubyte.gz"]
    assert fmnist_small.images.dtype == np.float32 and fmnist_small.images.max() <= 1.0


def test_simulator_is_seeded_and_target_group_prefers_target_category():
    labels = np.repeat(np.arange(8), 50)
    settings = SimulatorSettings(n_users=300, target_share=0.25, seed=3)
    a, b = simulate(labels, 7, settings), simulate(labels, 7, settings)
    assert np.array_equal(a.items, b.items) and a.simulated
    cat = labels[a.items]
    share_in_target_group = np.mean(cat[a.target_users[a.users]] == 7)
    share_elsewhere = np.mean(cat[~a.target_users[a.users]] == 7)
    assert share_in_target_group > 0.6 > 0.2 > share_elsewhere
    assert 0.15 < a.target_users.mean() < 0.35


def test_leave_one_out_holds_out_exactly_one_item_per_user():
    labels = np.repeat(np.arange(4), 30)
    data = simulate(labels, 3, SimulatorSettings(n_users=50, seed=0))
    loo = leave_one_out(data, seed=0)
    assert (loo.test_items >= 0).all()
    assert len(loo.train_users) == len(data.users) - data.n_users
    for u in range(5):
        assert loo.test_items[u] not in set(loo.train_items[loo.train_users == u])


def test_real_log_and_image_folder_run_through_the_same_types(tmp_path, fmnist_small):
    from PIL import Image

    root = tmp_path / "images"
    ids = []
    for k in range(12):
        label = int(fmnist_small.labels[k])
        (root / f"cat{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray((fmnist_small.images[k, 0] * 255).astype(np.uint8)).save(root / f"cat{label}" / f"i{k}.png")
        ids.append(f"i{k}")
    images, item_ids = load_image_folder(root)
    assert images.images.shape == (12, 1, 28, 28) and sorted(item_ids) == sorted(ids)
    csv = tmp_path / "interactions.csv"
    csv.write_text("user_id,item_id\nu1," + item_ids[0] + "\nu1," + item_ids[1] + "\nu2," + item_ids[2] + "\n")
    inter = load_interactions(csv, item_ids, images.labels, target_class=int(images.labels[0]))
    assert inter.n_users == 2 and not inter.simulated and inter.target_users[0]
    csv.write_text("user_id,item_id\nu1,nope\n")
    with pytest.raises(UserError, match="row 2, field item_id: 'nope' has no image"):
        load_interactions(csv, item_ids, images.labels, 0)
