"""The one place that turns a prior set into a pgmpy network.

pgmpy is imported lazily: it takes well over a second to import and is not
needed to answer a case (see :mod:`alpnet.engine`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

from .priors import PriorSet

if TYPE_CHECKING:  # pragma: no cover
    from pgmpy.models import DiscreteBayesianNetwork

__all__ = ["to_pgmpy", "pgmpy_columns", "write_network"]


def pgmpy_columns(table: np.ndarray) -> np.ndarray:
    """Flatten ``(card, *parent_cards)`` into pgmpy's ``(card, prod(parent_cards))``.

    pgmpy orders the columns of a ``TabularCPD`` like ``itertools.product`` over
    the evidence variables in the order given: the first parent changes slowest,
    which is numpy's C order over the parent axes.
    """
    return table.reshape(table.shape[0], -1)


def to_pgmpy(pset: PriorSet, cpts: Mapping[str, np.ndarray]) -> "DiscreteBayesianNetwork":
    """Build the pgmpy ``DiscreteBayesianNetwork`` the answers come from.

    Parameters
    ----------
    pset : PriorSet
        The validated prior set (structure and state names).
    cpts : mapping
        Variable -> table from :func:`alpnet.cpt.build_cpts`.

    Returns
    -------
    pgmpy.models.DiscreteBayesianNetwork
        Checked with ``check_model()``.
    """
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork()
    model.add_nodes_from(pset.variables)
    model.add_edges_from((p, v.name) for v in pset.variables.values() for p in v.parents)
    for name, var in pset.variables.items():
        table = cpts[name]
        model.add_cpds(
            TabularCPD(
                variable=name,
                variable_card=len(var.states),
                values=pgmpy_columns(table),
                evidence=list(var.parents) or None,
                evidence_card=[len(pset.variables[p].states) for p in var.parents] or None,
                state_names={name: list(var.states), **{p: list(pset.variables[p].states) for p in var.parents}},
            )
        )
    model.check_model()
    return model


def write_network(model: "DiscreteBayesianNetwork", fmt: str) -> str:
    """The network as BIF or XMLBIF text (pgmpy's writers).

    Parameters
    ----------
    model : DiscreteBayesianNetwork
    fmt : {"bif", "xmlbif"}

    Returns
    -------
    str
    """
    from pgmpy.readwrite import BIFWriter, XMLBIFWriter

    if fmt == "bif":
        return str(BIFWriter(model))
    if fmt == "xmlbif":
        return str(XMLBIFWriter(model))
    raise ValueError(f"format {fmt!r}: accepted: bif, xmlbif")
