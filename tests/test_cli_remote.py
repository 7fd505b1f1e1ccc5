"""`dni apply --server`: the same result through a real `dni serve` on loopback."""

from __future__ import annotations

import numpy as np
from conftest import photo
from PIL import Image
from test_server_util import serve

from dni.cli import main


def test_apply_through_the_server_matches_in_process(tiny_family_dir, tmp_path, capsys) -> None:
    src = tmp_path / "in.png"
    rgba = np.dstack([photo(), np.full(photo().shape[:2], 180, np.uint8)])
    Image.fromarray(rgba).save(src)
    mask = tmp_path / "mask.png"
    m = np.zeros(rgba.shape[:2], np.uint8)
    m[20:100, 30:] = 255
    Image.fromarray(m).save(mask)
    common = ["--family", "tiny", "--strength", "0.6", "--mask", str(mask),
              "--family-path", str(tiny_family_dir)]
    local, remote = tmp_path / "local.png", tmp_path / "remote.png"
    assert main(["apply", str(src), "-o", str(local), *common]) == 0
    with serve(tiny_family_dir) as server:
        assert main(["apply", str(src), "-o", str(remote), "--server", server.endpoint,
                     *common]) == 0
        assert main(["apply", str(src), "-o", str(tmp_path / "x.png"), "--server",
                     server.endpoint, "--family", "nope", "--strength", "0.5"]) == 1
        assert "no family 'nope'" in capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(remote)), np.asarray(Image.open(local)))
    assert not (tmp_path / "x.png").exists()
