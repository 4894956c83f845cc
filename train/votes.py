"""FER+ majority labels for the FER2013 *folder* layout, from a path-keyed vote file.

``train.ferplus`` relabels ``fer2013.csv`` by row position (FER+'s own ``fer2013new.csv``). A folder
copy of FER2013 has no row numbers, so its votes come keyed by path instead::

    path,fer2013_label,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF,...
    test/angry/PublicTest_10813312.jpg,angry,3,0,0,0,6,1,0,0,0,0,...

(``path`` relative to the folder root). The majority rule is ``train.ferplus``'s: the emotion with
the most votes; no label when the top count is tied, or when contempt + unknown + not-a-face got at
least as many votes as the top emotion.
"""

from __future__ import annotations

import csv
from pathlib import Path

from fer_demo.model import EMOTIONS
from train.data import DataError
from train.ferplus import OTHER_COLUMNS, VOTE_COLUMNS


def majority_labels(path: str | Path) -> dict[str, int | None]:
    """``path`` column -> FER+ majority class index (``EMOTIONS`` order), or None where there is no majority.

    Raises:
        DataError: the file is missing or lacks the vote columns, or a count is not a number.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: FER+ vote file not found (a CSV with path and the ten FER+ vote columns)")
    out: dict[str, int | None] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"path", *VOTE_COLUMNS, *OTHER_COLUMNS}
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: missing column(s) {sorted(missing)}; needs path and the FER+ vote columns")
        for line, row in enumerate(reader, start=2):
            try:
                votes = [int(float(row[c])) for c in VOTE_COLUMNS]
                other = sum(int(float(row[c])) for c in OTHER_COLUMNS)
            except ValueError:
                raise DataError(f"{path}:{line}: vote counts must be numbers") from None
            top = max(votes)
            if top == 0 or votes.count(top) > 1 or other >= top:
                out[row["path"]] = None
            else:
                out[row["path"]] = EMOTIONS.index(list(VOTE_COLUMNS.values())[votes.index(top)])
    return out
