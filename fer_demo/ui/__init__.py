"""The web UI's parts; ``app.py`` lays them out and launches.

- ``options``: the choices on the page (CAM method, target, test-time augmentation) and the limits text.
- ``handler``: the Analyze request and the ``/predict`` API (upload in, outputs out, upload forgotten).
- ``render``: a ``Prediction`` as display values (boxes, thumbnails, tables, summary, JSON).
- ``model_page``: the Model tab, read from the release files next to the weights.
- ``about``: the About tab.
"""
