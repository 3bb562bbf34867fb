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
    """The network as BIF or XMLBIF text.

    BIF comes from pgmpy's ``BIFWriter``. XMLBIF is written here with numpy:
    pgmpy's ``XMLBIFWriter`` needs minutes for the ALP table (2^16 parent
    configurations); the output follows the same XMLBIF 0.3 layout and is read
    back by pgmpy's ``XMLBIFReader`` and by pyAgrum (tested).

    Parameters
    ----------
    model : DiscreteBayesianNetwork
    fmt : {"bif", "xmlbif"}

    Returns
    -------
    str
    """
    from pgmpy.readwrite import BIFWriter

    if fmt == "bif":
        return str(BIFWriter(model))
    if fmt == "xmlbif":
        return _xmlbif(model)
    raise ValueError(f"format {fmt!r}: accepted: bif, xmlbif")


def _xmlbif(model: "DiscreteBayesianNetwork") -> str:
    from xml.sax.saxutils import escape

    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<BIF VERSION="0.3">', "<NETWORK>",
             "<NAME>alpnet</NAME>"]
    for node in model.nodes():
        cpd = model.get_cpds(node)
        lines.append('<VARIABLE TYPE="nature">')
        lines.append(f"  <NAME>{escape(str(node))}</NAME>")
        lines.extend(f"  <OUTCOME>{escape(str(s))}</OUTCOME>" for s in cpd.state_names[node])
        lines.append("</VARIABLE>")
    for node in model.nodes():
        cpd = model.get_cpds(node)
        parents = list(cpd.variables[1:])
        lines.append("<DEFINITION>")
        lines.append(f"  <FOR>{escape(str(node))}</FOR>")
        lines.extend(f"  <GIVEN>{escape(str(p))}</GIVEN>" for p in parents)
        # XMLBIF lists the child's distribution for each parent configuration in turn
        values = cpd.get_values().reshape(len(cpd.state_names[node]), -1).T
        table = " ".join(np.format_float_positional(x, precision=17, trim="-") for x in values.ravel())
        lines.append(f"  <TABLE>{table}</TABLE>")
        lines.append("</DEFINITION>")
    lines += ["</NETWORK>", "</BIF>", ""]
    return "\n".join(lines)
