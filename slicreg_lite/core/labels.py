"""The label names and the paper's constants, defined once: the 13 BTCV organs, the four
large organs of the paper's avg(4), the paper's Table 1, and the one rule that names a
label set (:func:`name_labels`)."""

from __future__ import annotations

# The BTCV label order (as in the paper's table); label 0 is background.
LABEL_NAMES = (
    "spleen",
    "right kidney",
    "left kidney",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior vena cava",
    "portal and splenic vein",
    "pancreas",
    "right adrenal gland",
    "left adrenal gland",
)
NUM_LABELS = len(LABEL_NAMES)  # 13
#: The four large organs of the paper's avg(4): spleen, right kidney, left kidney, liver.
LARGE_ORGANS = (1, 2, 3, 6)


#: Every BTCV label number, 1..13 (0 is background and never scored).
ALL_LABELS = tuple(range(1, NUM_LABELS + 1))
#: The BTCV label set: label number -> organ name.
BTCV_LABELS = dict(zip(ALL_LABELS, LABEL_NAMES))
#: The organ groups of the Dice box plots (:func:`slicreg_lite.display.show_dice_boxplots`):
#: group name -> BTCV label numbers. Every organ is in exactly one group; the first is
#: the paper's avg(4).
ORGAN_GROUPS = {
    "the four large organs (avg(4))": LARGE_ORGANS,  # spleen, kidneys, liver
    "other organs": (4, 7, 11),  # gallbladder, stomach, pancreas
    "vessels and oesophagus": (5, 8, 9, 10),  # esophagus, aorta, IVC, portal/splenic vein
    "adrenal glands": (12, 13),
}
#: The largest label value a label map may hold (label maps are stored as uint8).
MAX_LABEL = 255

#: The columns of the paper's table, in its order.
PAPER_COLUMNS = ("spleen", "r.kidney", "l.kidney", "liver", "avg(4)", "avg(13)")

#: Table 1 of the paper (Heinrich, MIDL 2021): Dice % (mean, std) of 9 BCV test scans
#: registered to template #38, in the order of :data:`PAPER_COLUMNS`.
PAPER_TABLE = {
    "initial, not registered": ((18.0, 17.7), (12.5, 14.9), (9.0, 12.5), (26.2, 18.1),
                                (16.4, 16.6), (8.8, 13.4)),
    "PDD-Net, two warps": ((48.8, 26.5), (49.0, 23.3), (42.3, 23.0), (60.2, 23.6),
                           (50.1, 24.0), (29.1, 25.3)),
    "3D UNet + regression + RW": ((30.2, 16.8), (41.9, 17.8), (35.3, 8.8), (57.4, 8.5),
                                  (41.2, 16.7), (23.2, 18.2)),
    "3D UNet + Slic + Adam": ((57.1, 9.4), (38.4, 12.1), (41.8, 12.1), (71.8, 9.0),
                              (52.3, 17.0), (30.0, 22.1)),
    "3D DeepLab + regression + RW": ((31.1, 16.6), (45.6, 15.6), (43.2, 10.6), (57.7, 8.4),
                                     (44.4, 15.9), (25.1, 19.3)),
    "Slic-Reg (paper): 3D DeepLab + Slic + Adam": ((62.4, 9.2), (50.8, 11.8), (49.1, 13.5),
                                                   (74.1, 8.6), (59.1, 14.6), (31.8, 23.6)),
}

# Short column names of the paper; every full name of LABEL_NAMES works too.
_SHORT_NAMES = {"r.kidney": 2, "l.kidney": 3}


def is_btcv(label_names: dict) -> bool:
    """Whether a label set is the 13 BTCV organs (numbers and names, case and spaces aside).

    Only then do the paper's columns (spleen, kidneys, liver, avg(4), avg(13)) apply.

    Examples
    --------
    >>> is_btcv(BTCV_LABELS), is_btcv({1: "liver", 2: "tumour"})
    (True, False)
    """
    def plain(name) -> str:
        return "".join(ch for ch in str(name).lower() if ch.isalnum())

    return (set(label_names) == set(ALL_LABELS)
            and all(plain(label_names[n]) == plain(BTCV_LABELS[n]) for n in ALL_LABELS))


def name_labels(values, known: dict | None = None) -> dict[int, str]:
    """The one rule that names a label set (the table's rows, the ``register`` report).

    The data source's own names when it has them (``known``: the BTCV organs for the
    phantom and BCV, ``dataset.json``'s for Learn2Reg, ``split.json``'s for a folder);
    else ``"label N"`` for every value found: organ names are never guessed.

    Parameters
    ----------
    values : iterable of int
        The label values found (e.g. in the fixed scan's labels); 0 is background.
    known : dict, optional
        ``number -> name`` of the data source.

    Examples
    --------
    >>> name_labels([0, 1, 6], BTCV_LABELS)[6]
    'liver'
    >>> name_labels([0, 6, 1])
    {1: 'label 1', 6: 'label 6'}
    """
    if known:
        return {int(k): str(v) for k, v in known.items()}
    return {v: f"label {v}" for v in sorted({int(v) for v in values} - {0})}
