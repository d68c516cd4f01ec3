"""Write data/breast_cancer.csv from the copy of the dataset that ships inside scikit-learn.

Run from the repository root:  python data/export_breast_cancer.py
The output is committed, so the tutorial never downloads anything at run time.
"""

from pathlib import Path

from sklearn.datasets import load_breast_cancer

bunch = load_breast_cancer(as_frame=True)
frame = bunch.frame.rename(columns=lambda name: name.replace(" ", "_"))
# Spell the target out: "malignant" reads better in a confusion matrix than 0.
frame = frame.rename(columns={"target": "diagnosis"})
frame["diagnosis"] = frame["diagnosis"].map(dict(enumerate(bunch.target_names)))
frame.to_csv(Path(__file__).with_name("breast_cancer.csv"), index=False)
