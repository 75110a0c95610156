"""``python -m eval.replay``: the page, what it shows, its safety against hostile text, and its errors."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.follower import Follower, FollowerConfig
from agents.rollout import evaluate_follower
from envs.gym.vector_env import VLNVectorEnv
from eval.replay.__main__ import main as replay_main
from eval.replay.page import embed_json
from eval.score import write_results

PAYLOAD = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> Walk & stop'


@pytest.fixture(scope="module")
def hostile_world(tiny_world, tmp_path_factory):
    """The tiny world with one val_unseen instruction replaced by script and onerror payloads."""
    data = tmp_path_factory.mktemp("hostile") / "world"
    data.mkdir()
    for part in Path(tiny_world).iterdir():
        if part.name != "R2R":
            (data / part.name).symlink_to(part)
    shutil.copytree(Path(tiny_world) / "R2R", data / "R2R")
    split = data / "R2R" / "R2R_val_unseen.json"
    records = json.loads(split.read_text())
    records[0]["instructions"][0] = PAYLOAD
    split.write_text(json.dumps(records))
    return data


@pytest.fixture(scope="module")
def follower_results(hostile_world, tmp_path_factory):
    """Extended results of a small random-init follower on val_unseen (attention and action scores)."""
    torch.manual_seed(0)
    env = VLNVectorEnv(hostile_world, "val_unseen", num_envs=8, shuffle=False, metrics_in_info=False)
    follower = Follower(FollowerConfig(vocab_size=len(env.vocab), feature_dim=env.feature_dim, word_dim=16,
                                       hidden_dim=32, action_dim=8))
    results = evaluate_follower(follower, env, details=True)
    path = tmp_path_factory.mktemp("results") / "val_unseen.json"
    write_results(path, results)
    return path.with_name("val_unseen.details.json"), results


def test_extended_results_carry_each_decision(follower_results):
    path, results = follower_results
    assert json.loads(path.with_name("val_unseen.json").read_text())[0].keys() == {"instr_id", "trajectory"}
    entry = next(r for r in results if len(r["decisions"]) > 1)
    tokens, first = entry["instruction_tokens"], entry["decisions"][0]
    assert tokens[0] == "<BOS>" and tokens[-1] == "<EOS>"
    assert len(first["attention"]) == len(tokens) and abs(sum(first["attention"]) - 1) < 1e-2
    scores = [first["stop"]] + [c["score"] for c in first["candidates"]]
    assert abs(sum(scores) - 1) < 1e-2 and first["action"] == int(np.argmax(scores))  # greedy
    # each decision sits where the agent stood: the start, then each arrival
    ats = [d["at"] for d in entry["decisions"]]
    assert ats[0] == 0 and all(entry["trajectory"][a][0] != entry["trajectory"][a - 1][0] for a in ats[1:])
    moved_to = [entry["trajectory"][a][0] for a in ats[1:]]
    chosen = [d["candidates"][d["action"] - 1]["viewpoint"] for d in entry["decisions"] if d["action"] > 0]
    assert chosen[: len(moved_to)] == moved_to


def _page(tmp_path, world, results, *extra):
    out = tmp_path / "replay.html"
    assert replay_main(["--results", str(results), "--split", "val_unseen", "--data-dir", str(world),
                        "--out", str(out), "--quiet", *extra]) == 0
    return out


def _embedded(page: Path) -> dict:
    text = page.read_text()
    start = text.index('<script id="replay-data" type="application/json">') + 49
    return json.loads(text[start: text.index("</script>", start)])


def test_page_holds_maps_views_and_the_hostile_text_only_as_data(tmp_path, hostile_world, follower_results):
    page = _page(tmp_path, hostile_world, follower_results[0])
    html = page.read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    assert PAYLOAD not in html and "<img src=x" not in html and "<script>window" not in html  # escaped data only
    data = _embedded(page)
    assert PAYLOAD in {e["instruction"] for e in data["episodes"]}
    episode = data["episodes"][0]
    assert episode["scan"] in data["maps"] and set(episode["reference"]) <= set(data["maps"][episode["scan"]]["ids"])
    assert all(key in data["images"] for key in episode["views"])  # the world's skyboxes, rendered
    assert data["images"][episode["views"][0]].startswith("data:image/jpeg;base64,")


def test_embedded_json_cannot_close_its_script_element():
    text = embed_json({"x": "</script><!-- \u2028 & >"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"x": "</script><!-- \u2028 & >"}


def test_png_maps_and_map_only_pages(tmp_path, hostile_world, follower_results):
    out = tmp_path / "pngs"
    page = _page(tmp_path, hostile_world, follower_results[0], "--png", str(out), "--no-images", "--limit", "3")
    pictures = sorted(out.glob("*.png"))
    assert len(pictures) == 3
    from PIL import Image

    assert np.asarray(Image.open(pictures[0])).std() > 5
    assert _embedded(page)["images"] == {}


@pytest.mark.parametrize("change,message", [
    ({"--instr-id": "no_such_id"}, "has no trajectory for --instr-id no_such_id"),
    ({"--split": "val_seen"}, "is not in this split"),
])
def test_clear_errors(tmp_path, hostile_world, follower_results, capsys, change, message):
    options = {"--results": str(follower_results[0]), "--split": "val_unseen", "--data-dir": str(hostile_world),
               "--out": str(tmp_path / "x.html")} | change
    assert replay_main([*(item for pair in options.items() for item in pair), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "x.html").exists()


def test_empty_results_file_is_refused(tmp_path, hostile_world, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert replay_main(["--results", str(empty), "--split", "val_unseen", "--data-dir", str(hostile_world),
                        "--out", str(tmp_path / "x.html")]) == 2
    assert "holds no episodes" in capsys.readouterr().err


@pytest.mark.realdata
def test_random_baseline_on_a_real_episode_replays_as_a_map(tmp_path, shared_data):
    from agents.baselines import main as baselines_main

    results = tmp_path / "random.json"
    assert baselines_main(["random", "--split", "val_unseen", "--data-dir", str(shared_data), "--out",
                           str(results)]) == 0
    instr_id = json.loads(results.read_text())[0]["instr_id"]
    page = _page(tmp_path, shared_data, results, "--instr-id", instr_id)
    data = _embedded(page)
    assert [e["id"] for e in data["episodes"]] == [instr_id] and data["images"] == {}
    house = data["maps"][data["episodes"][0]["scan"]]
    assert len(house["floor"]) == len(house["xy"]) == len(house["ids"]) and house["edges"]
    assert set(data["episodes"][0]["reference"]) <= set(house["ids"])


# ------------------------------------------------------------------------------------- in a real browser
def _browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("no chromium / chromedriver on this machine (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,950"):
        options.add_argument(flag)
    options.binary_location = binary
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_page_in_headless_chromium(tmp_path, hostile_world, follower_results):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = _page(tmp_path, hostile_world, follower_results[0])
    browser = _browser()
    try:
        started = time.perf_counter()
        browser.get(page.as_uri())
        opened = time.perf_counter() - started
        assert browser.find_elements(By.CSS_SELECTOR, "#index tbody tr"), "the index is empty"
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, errors
        assert opened < 10  # a generous bound on a loaded 2-core machine; the note reports the real figure

        # stepping forward moves the agent's marker and changes the view
        episode = _embedded(page)["episodes"][0]
        arrival = next(i for i in range(1, len(episode["trajectory"]))
                       if episode["trajectory"][i][0] != episode["trajectory"][0][0])
        marker = browser.find_element(By.ID, "agent").get_attribute("transform")
        view = browser.find_element(By.ID, "view").get_attribute("src")
        body = browser.find_element(By.TAG_NAME, "body")
        for _ in range(arrival):
            body.send_keys(Keys.ARROW_RIGHT)
        assert browser.find_element(By.ID, "step-label").text.startswith(f"step {arrival} ")
        assert browser.find_element(By.ID, "agent").get_attribute("transform") != marker
        assert browser.find_element(By.ID, "view").get_attribute("src") != view
        highlighted = browser.find_elements(By.CSS_SELECTOR, "#attention span.tok")
        assert highlighted and len(browser.find_elements(By.CSS_SELECTOR, "#candidates li")) >= 2

        # the index sorts by a column, both ways, and filters the failures
        header = browser.find_element(By.CSS_SELECTOR, '#index th[data-key="nav_error"]')
        for direction in (1, -1):
            header.click()
            cells = [row.find_elements(By.TAG_NAME, "td")[4].text
                     for row in browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")]
            values = [float(c) for c in cells if c != "–"]
            assert values == sorted(values, reverse=direction < 0) and len(set(values)) > 1
        browser.find_element(By.ID, "failures").click()
        failures = browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")
        assert failures and all("fail" in row.get_attribute("class") for row in failures)

        # the hostile instruction is shown as text and ran nothing
        browser.find_element(By.ID, "failures").click()
        hostile = _embedded(page)["episodes"]
        target = next(e["id"] for e in hostile if e["instruction"] == PAYLOAD)
        browser.find_element(By.CSS_SELECTOR, f'#index tbody tr[data-id="{target}"]').click()
        assert browser.execute_script("return window.__pwned === undefined")
        assert browser.find_element(By.ID, "instruction").text == PAYLOAD  # shown as text, whole
        assert not browser.find_elements(By.CSS_SELECTOR, "#instruction *, #attention img, #attention script")

        from PIL import Image

        shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L"), dtype=np.float64)
        assert shot.std() > 20 and shot.shape[1] > 1000  # a real page, not a blank one
    finally:
        browser.quit()
