"""The alignment rule in code: steps_to_rows by hand, check_rows, row_fields, observation_keys."""

import pytest
import torch

from synthetic_episodes import expected_rows, synthetic_steps
from worldmodels.core import keys
from worldmodels.data.rows import ROW_KEYS, check_rows, observation_keys, row_fields, steps_to_rows


def test_steps_to_rows_alignment_by_hand():
    rows = steps_to_rows(synthetic_steps([3], first_episode=2))
    assert rows.shape == (4,)
    assert rows[keys.STATE][:, 1].tolist() == [0, 1, 2, 3]
    taken = torch.tensor([[2.0, 0.0], [2.01, -0.01], [2.02, -0.02]])
    assert torch.allclose(rows[keys.ACTION], torch.cat([taken, torch.zeros(1, 2)]))
    assert torch.allclose(rows[keys.PREV_ACTION], torch.cat([torch.zeros(1, 2), taken]))
    assert rows[keys.REWARD].flatten().tolist() == [0.0, 1.5, 2.0, 2.5]
    assert rows[keys.IS_FIRST].flatten().tolist() == [True, False, False, False]
    assert rows[keys.IS_LAST].flatten().tolist() == [False, False, False, True]
    assert not rows[keys.IS_TERMINAL].any()
    assert rows[keys.PIXELS].dtype == torch.uint8


def test_observation_keys_are_the_tensors_at_the_root_and_under_next():
    assert observation_keys(synthetic_steps([3])) == [keys.PIXELS, keys.STATE]


def test_check_rows_accepts_episodes_and_names_what_is_wrong():
    rows = expected_rows(0, 4)
    check_rows(rows)
    with pytest.raises(ValueError, match=">= 2 rows"):
        check_rows(rows[:1])
    with pytest.raises(ValueError, match="lack keys"):
        check_rows(rows.exclude(keys.PREV_ACTION))
    with pytest.raises(ValueError, match="is_first only on row 0"):
        check_rows(rows[1:])
    moved = rows.clone()
    moved[keys.REWARD][0] = 1.0
    with pytest.raises(ValueError, match="alignment rule violated"):
        check_rows(moved)


def test_row_fields_is_the_per_row_schema():
    fields = row_fields(expected_rows(0, 4))
    assert set(fields) == {keys.PIXELS, keys.STATE, *ROW_KEYS}
    assert fields[keys.PIXELS] == {"dtype": "uint8", "shape": [3, 4, 4]}
    assert fields[keys.IS_FIRST] == {"dtype": "bool", "shape": [1]}
    assert list(fields) == sorted(fields)
