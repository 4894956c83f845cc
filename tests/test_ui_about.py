"""fer_demo.ui.about: the About tab quotes the measured accuracy and says how to use the app safely."""

from __future__ import annotations

from app_helpers import fake_metrics

from fer_demo.ui.about import about_markdown
from fer_demo.ui.model_page import ModelInfo


def test_about_quotes_the_measured_accuracy(release, bare_release):
    m = fake_metrics()
    assert f"right on {m['accuracy']:.0%}" in about_markdown(ModelInfo.load(release))
    assert "accuracy is unknown" in about_markdown(ModelInfo.load(bare_release))
    about = about_markdown(ModelInfo.load(release), url="user/space")
    assert 'Client("user/space")' in about and 'api_name="/predict"' in about
    assert "not a felt emotion" in about and "Do not use it to make or support decisions about people" in about


def test_page_address_comes_from_the_request(monkeypatch):
    from types import SimpleNamespace

    from fer_demo.ui.about import page_address

    monkeypatch.delenv("SPACE_ID", raising=False)
    assert page_address(None) == "http://localhost:7860/"
    assert page_address(SimpleNamespace(headers={"host": "127.0.0.1:7861"})) == "http://127.0.0.1:7861/"
    behind_proxy = SimpleNamespace(headers={"host": "10.0.0.5:7860", "x-forwarded-host": "fer.example.org",
                                            "x-forwarded-proto": "https"})
    assert page_address(behind_proxy) == "https://fer.example.org/"
    monkeypatch.setenv("SPACE_ID", "someone/fer-demo")
    assert page_address(behind_proxy) == "someone/fer-demo"


def test_privacy_says_what_each_mode_sends_and_keeps(release):
    """Issue 22, defect 8: Privacy said only the snapshot is sent, while Live streams frames."""
    from fer_demo import limits

    about = about_markdown(ModelInfo.load(release))
    privacy = about[about.index("## Privacy"):about.index("## Use from code")]
    for mode in ("Analyze: a photo", "webcam snapshot", "**Live**", "**Video**", "Monitoring log"):
        assert mode in privacy, mode
    assert f"up to {1 / limits.LIVE_STREAM_EVERY_S:.0f} webcam frames a second" in privacy
    assert f"at most {limits.LIVE_MAX_SIDE} px" in privacy and "never logged" in privacy
    assert "only the snapshot you take" in privacy
    assert "on this page it is off" in privacy
    assert "on this page it is **on**" in about_markdown(ModelInfo.load(release), monitored=True)
