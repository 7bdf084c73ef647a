"""The ``skmeta`` command: meta-train on base classes, meta-test on novel ones.

``skmeta`` fits a few-shot classifier on the base classes of a data set and
reports its N-way K-shot accuracy on the novel classes, never seen in
training, as the mean over episodes with its 95% confidence interval, beside
two references on the same episodes: the raw input and the untrained backbone::

    skmeta                         # Omniglot minimal, embedded, 80-second limit
    skmeta --time-limit 600        # longer meta-training
    skmeta --dataset digits        # a tabular set of 5 base classes
    skmeta --data my_images/       # a folder of images, one subfolder per class
    skmeta --n-way 5 --k-shot 1 5 --episodes 600 --save protonet.skmeta

With ``--data``, a random ``--novel-fraction`` of the folder's classes (of its
groups, where the folders nest as ``group/class/file``) is held out, whole, as
the novel classes.

A Ctrl-C (SIGINT) ends the command with one line on stderr, saying what it
interrupted and what was saved, and the exit status 130.

Run ``skmeta --help`` for every option.
"""

from ._main import main

__all__ = ["main"]
