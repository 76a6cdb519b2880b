import pytest
import torch

from emergent_alignment.tensors import IGNORE_INDEX, left_pad, pad, right_pad_with_labels


def test_left_and_right_padding():
    ids, mask = left_pad([[1, 2, 3], [4], []], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4], [0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 0]]
    ids, mask = pad([[1, 2, 3], [4]], pad_id=9, side="right", width=4)
    assert ids.tolist() == [[1, 2, 3, 9], [4, 9, 9, 9]] and mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert ids.dtype == mask.dtype == torch.long
    with pytest.raises(ValueError, match="side"):
        pad([[1]], 0, side="middle")
    with pytest.raises(ValueError, match="shorter than the longest row"):
        pad([[1, 2]], 0, width=1)


def test_right_pad_with_labels_masks_prompts_and_padding():
    ids, mask, labels = right_pad_with_labels([[5, 6, 7], [8, 9]], [[0, 1, 1], [1, 0]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 9, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert labels.tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    with pytest.raises(ValueError, match="loss mask of its own length"):
        right_pad_with_labels([[1, 2]], [[1]], 0)


def test_organism_collate_is_the_shared_padding():
    from emergent_alignment.organism.build import collate

    ids, mask, labels = collate([([1, 2, 3], [0, 1, 1]), ([4], [1])], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert labels.tolist() == [[-100, 2, 3], [4, -100, -100]]
