"""Write the penguin files from the copy of the Palmer penguins data in the `palmerpenguins` package.

Run from the repository root, once the package is there (it is not one of the tutorial's
requirements: the outputs are committed, and nothing is downloaded at run time):

    pip install palmerpenguins==0.1.4
    python data/export_penguins.py

- penguins.csv: the whole table as the package ships it, 344 rows, empty cells where a value
  was not recorded;
- penguins_train.csv and penguins_eval.csv: the same rows split once, 275 and 69;
- penguins_new.csv: four rows without their species, for predict.py and the model server.
"""

from importlib.resources import files
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

# The package's CSV spells a missing value "NA"; read as such, written as an empty cell.
# convert_dtypes: whole numbers stay whole (181, not 181.0) in a column with empty cells.
frame = pd.read_csv(files("palmerpenguins") / "data" / "penguins.csv").convert_dtypes()
here = Path(__file__).parent
frame.to_csv(here / "penguins.csv", index=False)

# Held back once and for all, as for the breast cancer data: 20%, stratified by species.
train, held_back = train_test_split(
    frame, test_size=0.2, stratify=frame["species"], random_state=2026
)
train.sort_index().to_csv(here / "penguins_train.csv", index=False)
held_back.sort_index().to_csv(here / "penguins_eval.csv", index=False)

# Four held-back rows as they might arrive, without the species: one of each species, and one
# whose sex was not recorded.
rows = held_back.sort_index()
new = pd.concat(
    [
        rows[rows["species"] == "Adelie"].head(1),
        rows[rows["species"] == "Gentoo"].head(1),
        rows[rows["species"] == "Chinstrap"].head(1),
        rows[rows["sex"].isna()].head(1),
    ]
)
new.drop(columns="species").to_csv(here / "penguins_new.csv", index=False)
