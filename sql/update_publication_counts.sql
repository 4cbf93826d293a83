-- Keep a publication's counts equal to its rows after a refresh replaced some users' rows.
-- Inputs: <as_of>, <users_delta>, <rows_delta>; identifier {{schema}}. Same transaction as the replace.
UPDATE {{schema}}.publications
SET users = users + :users_delta,
    rows = rows + :rows_delta
WHERE as_of = :as_of
