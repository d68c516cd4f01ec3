"""Write the monitoring room's practice data: rows that arrive after the champion was trained.

Run from the repository root:  python monitoring/make_batches.py
The outputs are committed (data/README.md describes them); running it again reproduces them
byte for byte. The story: the lab that measures the tumours recalibrates its imaging, and the
new calibration is 10% off, so every length reads 10% short: radius and perimeter x 0.9, area
(a length squared) x 0.81, in their mean, error and worst columns alike. The other 21 features
(texture, smoothness, concavity...) do not depend on scale and stay as they were.

- later_steady.csv: the 114 held-back rows (breast_cancer_eval.csv) as the champion would score
  them, without the label: rows no model trained on, measured as before. Nothing drifted.
- later_drifted.csv: the same rows measured on the recalibrated scale: nine features moved.
- recalibrated_train.csv and recalibrated_eval.csv: the new period's labelled rows, on the new
  scale, for the loop after drift is found: the 455 training rows re-measured (to retrain on)
  and the 114 held-back rows with their diagnosis, which arrives later (the gate's exam).
"""

from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parents[1] / "data"
TARGET = "diagnosis"
# How far off the new calibration is: each length reads this fraction of its true value.
LENGTH_FACTOR = 0.9
LENGTHS = [f"{kind}_{name}" for kind in ("mean", "worst") for name in ("radius", "perimeter")]
LENGTHS += ["radius_error", "perimeter_error"]
AREAS = ["mean_area", "area_error", "worst_area"]


def recalibrated(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows as the recalibrated device measures them (rounded as the dataset's values are)."""
    rows = rows.copy()
    rows[LENGTHS] = (rows[LENGTHS] * LENGTH_FACTOR).round(6)
    rows[AREAS] = (rows[AREAS] * LENGTH_FACTOR**2).round(6)
    return rows


train = pd.read_csv(DATA / "breast_cancer_train.csv")
held_back = pd.read_csv(DATA / "breast_cancer_eval.csv")

# What the champion scores: features only, as a batch job or the served model receives them.
held_back.drop(columns=TARGET).to_csv(DATA / "later_steady.csv", index=False)
recalibrated(held_back).drop(columns=TARGET).to_csv(DATA / "later_drifted.csv", index=False)

# The new period's rows with their labels: to retrain on, and the gate's held-back exam.
recalibrated(train).to_csv(DATA / "recalibrated_train.csv", index=False)
recalibrated(held_back).to_csv(DATA / "recalibrated_eval.csv", index=False)
