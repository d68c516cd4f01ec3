"""Write the tutorial's data files from the copy of the dataset that ships inside scikit-learn.

Run from the repository root:  python data/export_breast_cancer.py
The outputs are committed, so the tutorial never downloads anything at run time:
- breast_cancer.csv: the whole dataset, 569 rows, 30 features and the diagnosis;
- breast_cancer_train.csv and breast_cancer_eval.csv: the same rows split once, 455 and 114;
- sample_rows.csv: five rows without the diagnosis, for predict.py;
- sample_request.json: the same five rows as a `dataframe_split` request for the model server.
"""

import json
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

bunch = load_breast_cancer(as_frame=True)
frame = bunch.frame.rename(columns=lambda name: name.replace(" ", "_"))
# Spell the target out: "malignant" reads better in a confusion matrix than 0.
frame = frame.rename(columns={"target": "diagnosis"})
frame["diagnosis"] = frame["diagnosis"].map(dict(enumerate(bunch.target_names)))
here = Path(__file__).parent
frame.to_csv(here / "breast_cancer.csv", index=False)

# Held back once and for all: 20% of the rows, stratified by diagnosis, with a fixed seed. The
# training scripts read only breast_cancer_train.csv (their own test split comes out of it);
# register_model.py's promotion gate scores every challenger and the champion on
# breast_cancer_eval.csv, rows no model has seen. Both keep the original row order.
train, held_back = train_test_split(
    frame, test_size=0.2, stratify=frame["diagnosis"], random_state=2026
)
train.sort_index().to_csv(here / "breast_cancer_train.csv", index=False)
held_back.sort_index().to_csv(here / "breast_cancer_eval.csv", index=False)

# Rows 1 and 20-23: two malignant and three benign tumours.
sample = frame.iloc[[0, 19, 20, 21, 22]].drop(columns="diagnosis")
sample.to_csv(here / "sample_rows.csv", index=False)
request = {"dataframe_split": sample.to_dict(orient="split", index=False)}
(here / "sample_request.json").write_text(json.dumps(request) + "\n")
