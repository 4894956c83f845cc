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
