"""Specification of per-class sums and counts (skmeta.fewshot._segments)."""

import torch

from skmeta.fewshot._segments import class_counts, class_sums


def test_class_sums_by_hand():
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    y = torch.tensor([2, 0, 2])
    torch.testing.assert_close(
        class_sums(z, y, 4), torch.tensor([[3.0, 4.0], [0, 0], [6.0, 8.0], [0, 0]])
    )
    torch.testing.assert_close(
        class_counts(y, 4, z.dtype), torch.tensor([1.0, 0, 2, 0])
    )


def test_class_sums_equal_the_one_hot_product_and_its_gradient():
    z = torch.randn(50, 3, 2, 2, requires_grad=True, dtype=torch.float64)
    y = torch.randint(7, (50,))
    one_hot = torch.nn.functional.one_hot(y, 7).to(z.dtype)
    expected = (one_hot.T @ z.flatten(1)).reshape(7, 3, 2, 2)
    torch.testing.assert_close(class_sums(z, y, 7), expected)
    weights = torch.randn(7, 3, 2, 2, dtype=torch.float64)
    (grad,) = torch.autograd.grad((class_sums(z, y, 7) * weights).sum(), z)
    torch.testing.assert_close(grad, weights[y])
