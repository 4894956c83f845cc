"""The About page: what the app does, what it cannot do, responsible use, privacy, use from code."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fer_demo import limits
from fer_demo.model import EMOTIONS
from fer_demo.ui.options import CAM_CHOICES, DEFAULT_CAM, MEMORY_TTL_MIN

if TYPE_CHECKING:
    from fer_demo.ui.model_page import ModelInfo

ABOUT = """
## What this does

1. **Finds faces** with MTCNN (a face detector trained on WIDER FACE / CelebA).
2. **Aligns each face**: rotates it so the eyes are level, frames it the way FER2013 faces are
   framed and reduces it to a 48x48 grayscale picture, the only thing the classifier sees.
3. **Classifies the expression** into FER2013's seven categories ({emotions}) with a VGG19-BN
   trained{init} on FER2013's training split.
4. **Explains** the answer with a class-activation map (Grad-CAM and friends): the warm regions
   are what pushed the score of the explained class up. Pick another *target class* to ask
   "why not happy?".

## What it can and cannot do

- FER2013 is ~36,000 small (48x48), grayscale, mostly frontal web photos of faces with noisy
  labels; humans asked to label them were estimated to be right only about 65% of the time
  (Goodfellow et al., 2013). {accuracy}
- Side views, sunglasses, masks, heavy shadows, very small faces, children and artwork are far
  from the training data and get unreliable answers, often with high confidence.
- Seven categories are a simplification: real expressions are mixed, subtle, and depend on
  context. **A facial expression is not a felt emotion.** A smile can be polite, nervous or sad;
  the model only sees pixels.
- FER2013 was scraped from web image searches. Its faces are not a balanced sample of ages,
  skin tones, genders or cultures, and expression norms differ between cultures, so accuracy
  differs between groups of people in ways nobody has measured for this model.
- The heatmaps show where the network's evidence is, not the "reason" in a human sense, and
  different CAM methods can disagree.

## Responsible use

This is a teaching demo. **Do not use it to make or support decisions about people**:
hiring or interviews, policing, border control, education or exam proctoring, health or
insurance, workplace or public surveillance, credit. Emotion recognition for such uses is
scientifically weak and is restricted by law in places (the EU AI Act bans it in workplaces
and schools). Analyse only photos of people who agreed to it.

## Privacy

What each mode sends to this server, and what the server keeps of it:

| Mode | What is sent | What is kept, and how long |
| --- | --- | --- |
| **Analyze: a photo** (upload, paste or example) | the photo file, once | The file is deleted from the server's disk as soon as it has been read. Its bytes stay in the server's memory (never on disk) for {ttl} minutes after their last use, so you can re-run it with other settings; closing the tab or pressing **Clear** drops them sooner. |
| **Analyze: a webcam snapshot** | only the snapshot you take (the camera is on only after you click it) | as a photo |
| **Live** | while you record, up to {live_fps} webcam frames a second (at most {live_side} px) | Each frame is analysed in memory and dropped: never written to disk, never logged. The faces' tracks (positions and probabilities, no pixels) are kept in memory until you close the tab, or {live_idle} minutes without a frame. |
| **Video** | the video file, once | The file is deleted from the server's disk once analysed; its frames are never written to disk. The annotated video and the CSV/JSON records you download are deleted within {delete_min} minutes. |

- Result images (the photo with its boxes, the faces, the heatmaps) are never written to the
  server's disk: they are sent to your browser inside the page itself. The downloadable JSON result
  (boxes and probabilities, no pixels) is deleted after {json_ttl} minutes. Everything left is
  deleted when the server stops. Nothing you send is used for training or shared.
- **Monitoring log**, only where the operator turned it on (the page then says so at its top and
  has a **Monitor** tab): for every face analysed on **Analyze**, one line of statistics (the
  predicted label and probabilities, the face detector's score, the face's size, brightness and
  contrast, the options used, the time). Never the photo, any pixel, the face's position, a file
  name, or anything that identifies you or your device. Live and Video are not logged. It is off
  by default and on this page{monitor_state}.
- The app itself loads no third-party fonts, analytics or trackers (a hosting page around it,
  such as a Hugging Face Space, has its own policies).

## Use from code

```python
from gradio_client import Client, handle_file

client = Client("{url}")
result = client.predict(
    handle_file("photo.jpg"),  # path or URL of a photo
    "{cam}",  # explanation: {cams}
    "predicted",  # heatmap target: "predicted" or one of the 7 classes
    "none",  # test-time augmentation: none, flip or tencrop
    api_name="/predict",
)
for face in result["faces"]:
    print(face["label"], face["confidence"], face["box"])

# A video file (MP4, MOV or WebM): frames analysed per second (at most 10), CAM method or none.
video = client.predict(handle_file("clip.mp4"), 5, "none", api_name="/predict_video")
for record in video["records"]:  # one per face per analysed frame; faces keep their number
    print(record["time"], record["face"], record["label"], record["probabilities"])
```
"""


def page_address(request: Any = None, default: str = "http://localhost:7860/") -> str:
    """Where this page is served from, for the client snippet: the Space's name on Hugging Face,
    else the scheme and host the browser used (behind a proxy: its forwarded ones)."""
    space = os.environ.get("SPACE_ID")
    if space:
        return space
    headers = getattr(request, "headers", None) or {}
    host = headers.get("x-forwarded-host") or headers.get("host")
    if not host:
        return default
    scheme = headers.get("x-forwarded-proto") or "http"
    return f"{scheme}://{host}/"


def about_markdown(info: ModelInfo | None = None, url: str = "http://localhost:7860/", monitored: bool = False) -> str:
    """The About page (Markdown); ``url`` for the client snippet; ``monitored``: whether this
    deployment keeps the monitoring log (the Privacy section says so)."""
    if info is not None and info.metrics is not None:
        m = info.metrics
        accuracy = (f"This model is right on {m['accuracy']:.0%} of FER2013's PublicTest faces "
                    f"(macro-F1 {m.get('macro_f1', float('nan')):.2f}; the split also chose its training epoch; "
                    "see the Model tab), and less often on photos unlike FER2013's.")
    else:
        accuracy = "These weights come without evaluation results, so their accuracy is unknown."
    init = ((info.card or {}).get("training") or {}).get("init") if info is not None else None
    init = {"scratch": " from scratch", "imagenet": " (starting from ImageNet weights)"}.get(init, "")
    return ABOUT.format(emotions=", ".join(EMOTIONS), accuracy=accuracy, ttl=MEMORY_TTL_MIN,
                        json_ttl=limits.DELETE_AFTER_S // 60, url=url, init=init,
                        live_fps=f"{1 / limits.LIVE_STREAM_EVERY_S:.0f}", live_side=limits.LIVE_MAX_SIDE,
                        live_idle=f"{limits.LIVE_IDLE_S / 60:g}", delete_min=round(limits.DELETE_AFTER_S / 60),
                        monitor_state=" it is **on**" if monitored else " it is off",
                        cam=DEFAULT_CAM, cams=", ".join(CAM_CHOICES))
