"""Coverage models: a named-account tier next to geographic territories, and rep expertise.

A run with a named tier splits the accounts (``NAMED_FIELD``, or ``NAMED_TOP_PCT`` of
``NAMED_MEASURE``) and the reps (``REP_NAMED_FIELD``) into two tiers solved as two
:class:`model.TerritoryModel` runs and merged into one plan: the named accounts go to the named
reps, balanced on the balance fields against the named tier's own targets, keeping today's owner
where the tolerance allows (fewest moves, distance only breaks ties); the other accounts form
geographic territories as without tiers. Expertise (``SEGMENT_FIELD`` / ``REP_SKILLS_FIELD``)
restricts the model's allowed pairs (hard) or adds ``SKILL_WEIGHT`` to the cost of a pair whose
rep does not cover the account's segment (soft).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from . import palette
from .errors import InfeasibleError, InvalidInputError, TerritoryPlannerError
from .kpis import NAMED_TIER
from .model import TOLERANCE_MAX_TENTHS, PairRule, balance_values, tolerances

logger = logging.getLogger(__name__)

__all__ = ["SKILL_RULES", "TIER_GEOGRAPHIC", "TIER_NAMED", "Coverage", "design_coverage",
           "merge_tiers", "named_accounts", "normalise_segment", "rebalance_coverage",
           "skill_pairs", "truthy"]  # fmt: skip

TIER_NAMED = NAMED_TIER
TIER_GEOGRAPHIC = "geographic"
SKILL_RULES = ("hard", "soft")
SKILL_PAIR_RULE = PairRule("SKILL_RULE hard", "set SKILL_RULE to soft",
                           "{territory}'s rep does not cover its segment (SKILL_RULE hard)",
                           "expertise")  # fmt: skip
_TRUE = {"1", "true", "t", "yes", "y", "named"}
_FALSE = {"", "0", "false", "f", "no", "n", "none", "null", "nan", "geographic"}


@dataclass(frozen=True)
class Coverage:
    """The coverage options of a run (all off by default)."""

    named_field: str | None = None
    named_top_pct: float | None = None
    named_measure: str | None = None
    rep_named_field: str | None = None
    segment_field: str | None = None
    rep_skills_field: str | None = None
    skill_rule: str = "hard"
    skill_weight: float = 10.0

    @property
    def named(self) -> bool:
        """True when a named tier is asked for."""
        return bool(self.named_field) or self.named_top_pct is not None

    @property
    def expertise(self) -> bool:
        """True when accounts carry a segment to match with rep skills."""
        return bool(self.segment_field)

    @property
    def active(self) -> bool:
        """True when the run uses any coverage option."""
        return self.named or self.expertise


# ----------------------------------------------------------------------------- public helpers


def normalise_segment(value: object) -> str | None:
    """A segment's comparable form: lower case, without spaces, underscores or hyphens
    ("Health care", "health_care" and "HEALTHCARE" are all "healthcare"); None when empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = re.sub(r"[\s_\-]+", "", str(value).strip().lower())
    return text or None


def truthy(values: pd.Series, *, key: str, ids: np.ndarray) -> np.ndarray:
    """A yes/no field as booleans (1/0, true/false, yes/no; empty is no); other values are an
    error naming the records and ``key``."""
    out, bad = np.zeros(len(values), bool), []
    for i, v in enumerate(values.to_numpy()):
        if isinstance(v, (bool, np.bool_)):
            out[i] = bool(v)
            continue
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        text = str(v).strip().lower()
        with contextlib.suppress(ValueError):
            text = str(int(float(text))) if float(text) in (0.0, 1.0) else text
        if text in _TRUE:
            out[i] = True
        elif text not in _FALSE:
            bad.append(f"{ids[i]}={v}")
    if bad:
        msg = (f"{key}: values {', '.join(bad[:10])} are not yes/no; use 1 (or true) for yes and "
               "0 (or false, empty) for no.")  # fmt: skip
        raise InvalidInputError(msg)
    return out


def named_accounts(
    accounts: pd.DataFrame,
    *,
    ids: np.ndarray,
    named_field: str | None = None,
    named_top_pct: float | None = None,
    measure: str | None = None,
) -> np.ndarray:
    """(n,) True for the named accounts: ``named_field`` true, or the largest accounts that
    together make up the top ``named_top_pct`` % of ``measure`` (the smallest such set)."""
    if named_field:
        if named_field not in accounts.columns:
            msg = f"NAMED_FIELD: '{named_field}' is not a field of ACCOUNTS."
            raise InvalidInputError(msg)
        return truthy(accounts[named_field], key="NAMED_FIELD", ids=ids)
    pct = named_top_pct
    if pct is None or not np.isfinite(pct) or not (0 <= pct <= 100):
        msg = (f"NAMED_TOP_PCT: {pct} is outside 0-100; give the share of {measure or 'the measure'} "
               "(in %) the named accounts make up, e.g. 20.")  # fmt: skip
        raise InvalidInputError(msg)
    if not measure:
        msg = (
            "NAMED_MEASURE: choose the field whose top share makes an account named (e.g. revenue)."
        )
        raise InvalidInputError(msg)
    vals = balance_values(accounts, ids, [measure], noun="accounts")[:, 0]
    if pct <= 0 or vals.sum() <= 0:
        return np.zeros(len(vals), bool)
    order = np.argsort(-vals, kind="stable")
    need = pct / 100.0 * vals.sum()
    cut = int(np.searchsorted(np.cumsum(vals[order]), need - 1e-9 * vals.sum())) + 1
    out = np.zeros(len(vals), bool)
    out[order[: min(cut, len(vals))]] = True
    logger.info("NAMED_TOP_PCT %g: the %d largest accounts make up %.1f%% of %s; they are named.",
                pct, int(out.sum()), 100 * vals[out].sum() / vals.sum(), measure)  # fmt: skip
    return out


def account_segments(accounts: pd.DataFrame, field: str, ids: np.ndarray) -> np.ndarray:
    """(n,) normalised segment per account (None: no segment; such an account may go to any rep).
    Spellings merged by the normalisation are logged."""
    if field not in accounts.columns:
        msg = f"SEGMENT_FIELD: '{field}' is not a field of ACCOUNTS."
        raise InvalidInputError(msg)
    raw = accounts[field].to_numpy()
    seg = np.array([normalise_segment(v) for v in raw], dtype=object)
    _log_spellings(raw, seg, "SEGMENT_FIELD")
    empty = np.array([s is None for s in seg])
    if empty.any():
        logger.warning("SEGMENT_FIELD: %d account(s) have no segment (%s); any rep may take them.",
                       int(empty.sum()), ", ".join(ids[empty][:10]))  # fmt: skip
    return seg


def rep_skills(reps: pd.DataFrame, field: str, rep_ids: np.ndarray) -> list[frozenset[str]]:
    """The normalised segments each rep covers (comma- or semicolon-separated); a rep with none
    is logged as a warning and covers no segment."""
    if field not in reps.columns:
        msg = f"REP_SKILLS_FIELD: '{field}' is not a field of REPS."
        raise InvalidInputError(msg)
    raw, norm, out = [], [], []
    for v in reps[field].to_numpy():
        parts = [] if normalise_segment(v) is None else re.split(r"[,;]", str(v))
        skills = {normalise_segment(p) for p in parts} - {None}
        raw.extend(p for p in parts if normalise_segment(p))
        norm.extend(normalise_segment(p) for p in parts if normalise_segment(p))
        out.append(frozenset(skills))
    _log_spellings(np.array(raw, dtype=object), np.array(norm, dtype=object), "REP_SKILLS_FIELD")
    none = [r for r, s in zip(rep_ids, out) if not s]
    if none:
        logger.warning("REP_SKILLS_FIELD: reps %s have no skills; they take only accounts without "
                       "a segment (SKILL_RULE hard) or pay SKILL_WEIGHT for every account (soft).",
                       ", ".join(none))  # fmt: skip
    return out


def skill_pairs(
    segments: np.ndarray,
    skills: Sequence[frozenset[str]],
    *,
    rule: str = "hard",
    weight: float = 10.0,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(allowed, cost) of the (account, rep) pairs: hard gives the allowed pairs (None cost),
    soft the cost ``weight`` where the rep does not cover the account's segment (None allowed)."""
    if rule not in SKILL_RULES:
        msg = f"SKILL_RULE: '{rule}' is not one of {', '.join(SKILL_RULES)}."
        raise InvalidInputError(msg)
    covers = np.array([[s is None or s in sk for sk in skills] for s in segments], bool)
    covers = covers.reshape(len(segments), len(skills))
    if rule == "hard":
        return covers, None
    if not np.isfinite(weight) or weight < 0:
        msg = f"SKILL_WEIGHT: {weight} must be 0 or a positive penalty per account, e.g. 10."
        raise InvalidInputError(msg)
    return None, np.where(covers, 0.0, float(weight))


def check_segments(
    segments: np.ndarray,
    skills: Sequence[frozenset[str]],
    *,
    values: np.ndarray,
    capacity: np.ndarray,
    tolerance_pct: np.ndarray,
    names: Sequence[str],
    rep_ids: np.ndarray,
) -> tuple[str, float | None] | None:
    """The first segment that cannot be served under SKILL_RULE hard, as (message, the TOLERANCE
    that would pass this check or None when no tolerance helps); None when every check passes.

    Checks: every segment has a rep covering it; each segment's load fits in the upper bounds
    of the reps covering it; each rep can reach its lower bound from the accounts it covers.
    """
    segs = sorted({s for s in segments if s is not None})
    share = capacity / capacity.sum()
    for s in segs:
        if not any(s in sk for sk in skills):
            count = int(sum(1 for x in segments if x == s))
            return (f"SEGMENT_FIELD: segment '{s}' ({count} accounts) is covered by no rep "
                    f"(REP_SKILLS_FIELD of {', '.join(rep_ids)}); add '{s}' to a rep's skills "
                    "or set SKILL_RULE to soft.", None)  # fmt: skip
    covers = np.array([[x is None or x in sk for sk in skills] for x in segments], bool)
    covers = covers.reshape(len(segments), len(skills))
    for j, rid in enumerate(rep_ids):
        for m, name in enumerate(names):
            total = values[:, m].sum()
            low = share[j] * total * (1 - tolerance_pct[m] / 100.0)
            reach = values[covers[:, j], m].sum()
            if total > 0 and reach < low - 1e-9:
                what = ", ".join(sorted(skills[j])) or "no segment"
                need = 100.0 * (1 - reach / (share[j] * total))
                return (f"REP_SKILLS_FIELD: rep {rid} covers {what}; those accounts hold "
                        f"{100 * reach / total:.1f}% of {name}, less than the "
                        f"{100 * low / total:.1f}% its share ({100 * share[j]:.1f}%) needs within "
                        f"TOLERANCE; add skills to {rid}.", need if need < 100 else None)  # fmt: skip
    for s in segs:
        reps_s = np.array([s in sk for sk in skills])
        count = int(sum(1 for x in segments if x == s))
        mine = np.array([x == s for x in segments])
        for m, name in enumerate(names):
            total = values[:, m].sum()
            if total <= 0:
                continue
            load = values[mine, m].sum()
            room = share[reps_s].sum() * total
            if load > room * (1 + tolerance_pct[m] / 100.0) + 1e-9:
                need = 100.0 * (load / room - 1.0)
                return (f"SEGMENT_FIELD: segment '{s}' ({count} accounts) holds "
                        f"{100 * load / total:.1f}% of {name}, but its reps "
                        f"{', '.join(rep_ids[reps_s])} may hold at most "
                        f"{100 * share[reps_s].sum() * (1 + tolerance_pct[m] / 100):.1f}% "
                        f"within TOLERANCE.", need)  # fmt: skip
    return None


# ----------------------------------------------------------------------------- the runs


def design_coverage(accounts: gpd.GeoDataFrame, *, coverage: Coverage, **arguments: object):
    """:func:`territories.design_territories` with a named tier and/or expertise (one plan).

    ``arguments`` are design_territories' keyword arguments. Without a named tier this is one
    design run with the skill pairs; with one, the named accounts are planned among the named
    reps (fewest moves from CURRENT_FIELD, then distance) and the rest geographically, and the
    two are merged (:func:`merge_tiers`).
    """
    from .territories import design_territories

    def run_geo(acc, reps, pairs, **kw):
        return design_territories(acc, **_only(design_territories, {**arguments, **kw}),
                                  reps=reps, **pairs)  # fmt: skip

    def run_named(acc, reps, pairs, **kw):
        if arguments.get("current_field"):
            from .rebalance import rebalance_territories

            kw = {**arguments, **kw, "minimise_field": None}
            return rebalance_territories(acc, **_only(rebalance_territories, kw), reps=reps,
                                         **pairs).plan  # fmt: skip
        return run_geo(acc, reps, pairs, **kw)

    return _tiered(accounts, coverage, arguments, run_geo, run_named)


def rebalance_coverage(accounts: gpd.GeoDataFrame, *, coverage: Coverage, **arguments: object):
    """:func:`rebalance.rebalance_territories` with a named tier and/or expertise: each tier
    rebalanced with the fewest moves among its own reps, merged into one plan and one list of
    moves (with a ``tier`` column)."""
    from .rebalance import Rebalance, rebalance_territories

    results: dict[str, Rebalance] = {}

    def run(tier):
        def go(acc, reps, pairs, **kw):
            res = rebalance_territories(acc, **_only(rebalance_territories, {**arguments, **kw}),
                                        reps=reps, **pairs)  # fmt: skip
            results[tier] = res
            return res.plan

        return go

    plan = _tiered(accounts, coverage, arguments, run(TIER_GEOGRAPHIC), run(TIER_NAMED))
    moves = []
    for tier, res in results.items():
        moves.append(res.moves.assign(tier=tier))
    bound = sum(r.moves_lower_bound for r in results.values())
    return Rebalance(plan=plan, moves=pd.concat(moves, ignore_index=True), moves_lower_bound=bound)


def _tiered(accounts, coverage: Coverage, arguments: dict, run_geo: Callable,
            run_named: Callable):  # fmt: skip
    """Split, check and run the tiers; merge them into one plan."""
    if arguments.get("units") is not None:
        msg = ("NAMED_FIELD/NAMED_TOP_PCT and SEGMENT_FIELD work on ACCOUNTS; run them without "
               "UNITS (give the accounts alone).")  # fmt: skip
        raise InvalidInputError(msg)
    if accounts is None:
        msg = "ACCOUNTS: coverage models need the accounts (points)."
        raise InvalidInputError(msg)
    reps = arguments.get("reps")
    if reps is None:
        what = "a named tier" if coverage.named else "REP_SKILLS_FIELD"
        msg = (f"REPS: {what} needs the reps layer (with their named flag and skills); give REPS "
               "instead of TERRITORIES.")  # fmt: skip
        raise InvalidInputError(msg)
    id_field, rep_id = arguments.get("id_field"), arguments.get("rep_id_field")
    acc = accounts.reset_index(drop=True)
    if id_field not in acc.columns:
        msg = f"ID_FIELD: '{id_field}' is not a field of ACCOUNTS."
        raise InvalidInputError(msg)
    if rep_id not in reps.columns:
        msg = f"REP_ID_FIELD: '{rep_id}' is not a field of REPS."
        raise InvalidInputError(msg)
    reps = reps.reset_index(drop=True)
    ids = acc[id_field].astype(str).to_numpy()
    rep_ids = reps[rep_id].astype(str).to_numpy()
    fields = list(arguments.get("balance_fields") or ())
    tol = tolerances(float(arguments.get("tolerance_pct", 5.0)), arguments.get("balance_weights"),
                     fields)  # fmt: skip
    values = balance_values(acc, ids, fields)
    names = fields or ["accounts"]
    cap = _capacity(reps, arguments.get("rep_capacity_field"))
    seg = skills = None
    if coverage.expertise:
        if not coverage.rep_skills_field:
            msg = "REP_SKILLS_FIELD: choose the reps' field listing the segments each covers."
            raise InvalidInputError(msg)
        seg = account_segments(acc, coverage.segment_field, ids)
        skills = rep_skills(reps, coverage.rep_skills_field, rep_ids)
    if not coverage.named:
        accounts = _keep_tier_field(accounts)
        pairs = _pairs(coverage, seg, skills, np.ones(len(acc), bool), np.ones(len(reps), bool),
                       values=values, capacity=cap, tol=tol, names=names, rep_ids=rep_ids,
                       run=lambda p, **kw: run_geo(accounts, reps, p, **kw), arguments=arguments)  # fmt: skip
        try:
            plan = _mark_tier(run_geo(accounts, reps, pairs), TIER_GEOGRAPHIC, coverage)
        except TerritoryPlannerError as err:
            raise type(err)(_skill_words(err, pairs, arguments)) from None
        plan.parameters = {**plan.parameters, **{f: getattr(coverage, f) for f in
                                                 Coverage.__dataclass_fields__}}  # fmt: skip
        return plan
    is_named = named_accounts(acc, ids=ids, named_field=coverage.named_field,
                              named_top_pct=coverage.named_top_pct,
                              measure=coverage.named_measure or (fields[0] if fields else None))  # fmt: skip
    if not coverage.rep_named_field:
        msg = "REP_NAMED_FIELD: choose the reps' field that flags named-account reps (1 = named)."
        raise InvalidInputError(msg)
    if coverage.rep_named_field not in reps.columns:
        msg = f"REP_NAMED_FIELD: '{coverage.rep_named_field}' is not a field of REPS."
        raise InvalidInputError(msg)
    rep_named = truthy(reps[coverage.rep_named_field], key="REP_NAMED_FIELD", ids=rep_ids)
    if is_named.any() and not rep_named.any():
        msg = (f"REP_NAMED_FIELD: no rep is flagged as a named-account rep, but {int(is_named.sum())} "
               f"accounts are named; set '{coverage.rep_named_field}' to 1 for the named-account "
               "reps, or leave NAMED_FIELD and NAMED_TOP_PCT empty.")  # fmt: skip
        raise InvalidInputError(msg)
    if (~is_named).any() and rep_named.all():
        msg = (f"REP_NAMED_FIELD flags every rep as a named-account rep, but {int((~is_named).sum())} "
               "accounts are not named; flag the geographic reps 0, or name every account "
               "(NAMED_TOP_PCT 100).")  # fmt: skip
        raise InvalidInputError(msg)
    if not is_named.any():
        logger.warning("No account is named; the plan has the geographic tier only.")
    if is_named.all() and (~rep_named).any():
        logger.warning("Every account is named: the geographic reps %s get no accounts.",
                       ", ".join(rep_ids[~rep_named]))  # fmt: skip
    crossed = _check_current(acc, arguments.get("current_field"), is_named, rep_ids, rep_named)
    _check_locks(acc, arguments.get("lock_field"), is_named, ids, rep_ids, rep_named)
    logger.info("Named tier: %d accounts among %d named reps (%s); geographic tier: %d accounts "
                "among %d reps.", int(is_named.sum()), int(rep_named.sum()),
                ", ".join(rep_ids[rep_named]), int((~is_named).sum()), int((~rep_named).sum()))  # fmt: skip
    accounts = _keep_tier_field(accounts)  # after NAMED_FIELD was read (it may be "tier")
    parts = []
    for tier, rows, cols, run in ((TIER_GEOGRAPHIC, ~is_named, ~rep_named, run_geo),
                                  (TIER_NAMED, is_named, rep_named, run_named)):  # fmt: skip
        if not rows.any() or not cols.any():
            continue
        sub_acc = accounts.iloc[np.flatnonzero(rows)]
        sub_reps = reps.iloc[np.flatnonzero(cols)]
        pairs = _pairs(coverage, seg, skills, rows, cols, values=values[rows],
                       capacity=cap[cols], tol=tol, names=names, rep_ids=rep_ids[cols],
                       run=lambda p, a=sub_acc, r=sub_reps, f=run, **kw: f(a, r, p, **kw),
                       arguments=arguments, tier=tier)  # fmt: skip
        try:
            plan = run(sub_acc, sub_reps, pairs, other_tier_reps=tuple(rep_ids[~cols]))
        except TerritoryPlannerError as err:
            raise type(err)(
                f"{tier.capitalize()} tier: {_skill_words(err, pairs, arguments)}"
            ) from None
        parts.append((tier, np.flatnonzero(rows), plan))
    merged = merge_tiers(parts, n=len(acc), current_field=arguments.get("current_field"),
                         previous=accounts, quota_total=arguments.get("quota_total"))  # fmt: skip
    merged.kpis["named_from_geographic"] = crossed
    merged.parameters = {**merged.parameters, **{f: getattr(coverage, f) for f in
                                                 Coverage.__dataclass_fields__}}  # fmt: skip
    return merged


def _pairs(coverage, seg, skills, rows, cols, *, values, capacity, tol, names, rep_ids, run,
           arguments, tier: str | None = None) -> dict:  # fmt: skip
    """The pair_allowed/pair_cost arguments of a tier; infeasible hard skills are named here
    with a relaxation checked by solving."""
    if not coverage.expertise:
        return {}
    sub_seg = seg[rows]
    sub_sk = [s for s, c in zip(skills, cols) if c]
    allowed, cost = skill_pairs(sub_seg, sub_sk, rule=coverage.skill_rule,
                                weight=coverage.skill_weight)  # fmt: skip
    if coverage.skill_rule == "soft":
        miss = int((cost.min(1) > 0).sum())
        if miss:
            logger.warning("SKILL_RULE soft: %d account(s) have no rep covering their segment%s; "
                           "they go to the best rep without.", miss,
                           f" in the {tier} tier" if tier else "")  # fmt: skip
        return {"pair_cost": cost}
    problem = check_segments(sub_seg, sub_sk, values=values, capacity=capacity,
                             tolerance_pct=tol, names=names, rep_ids=rep_ids)  # fmt: skip
    if problem is None:
        return {"pair_allowed": allowed, "pair_rule": SKILL_PAIR_RULE}
    msg, need = problem
    where = f"{tier.capitalize()} tier: " if tier else ""
    fixes = []
    base = float(arguments.get("tolerance_pct", 5.0))
    if need is not None:
        t = math.ceil(10 * need * base / max(tol.min(), 1e-9) - 1e-6) / 10
        if t <= TOLERANCE_MAX_TENTHS / 10 and _solves(
            run, {"pair_allowed": allowed, "pair_rule": SKILL_PAIR_RULE}, tolerance_pct=t
        ):
            fixes.append(f"TOLERANCE {t:g} gives a plan (checked)")
    if _solves(
        run, skill_pairs(sub_seg, sub_sk, rule="soft", weight=coverage.skill_weight)[1], soft=True
    ):
        fixes.append("SKILL_RULE soft gives a plan (checked)")
    tail = f" {'; '.join(fixes)}." if fixes else ""
    raise InfeasibleError(f"{where}{msg}{tail}")


def _skill_words(err: Exception, pairs: dict, arguments: dict) -> str:
    """An engine message whose allowed pairs are the expertise rule alone, in those words (the
    model, the explanations and contiguity findings name SKILL_RULE themselves; this catches a
    message that still puts a barred pair down to REP_MAX_MINUTES when it is not set)."""
    text = str(err)
    if "pair_allowed" in pairs and arguments.get("rep_max_minutes") is None:
        text = text.replace("REP_MAX_MINUTES", "SKILL_RULE hard")
    return text


def _solves(run, pairs, *, soft: bool = False, **kw) -> bool:
    """Whether a tier run with these pairs (or soft costs) and keyword changes gives a plan."""
    arg = {"pair_cost": pairs} if soft else pairs
    root = logging.getLogger("territory_planner_plugin")
    level = root.level
    root.setLevel(logging.ERROR)  # the probe's own messages are not the run's
    try:
        run(arg, **kw)
    except TerritoryPlannerError:
        return False
    finally:
        root.setLevel(level)
    return True


def _check_current(acc, current_field, is_named, rep_ids, rep_named) -> int:
    """Warn about named accounts whose current rep is not a named rep (and the reverse); the
    number of the former."""
    if not current_field or current_field not in acc.columns:
        return 0
    text = np.array(["" if v is None or (isinstance(v, float) and math.isnan(v)) else
                     str(v).strip() for v in acc[current_field].to_numpy()], dtype=object)  # fmt: skip
    from_geo = is_named & np.isin(text, list(rep_ids[~rep_named]))
    to_geo = ~is_named & np.isin(text, list(rep_ids[rep_named]))
    if from_geo.any():
        logger.warning("NAMED: %d named account(s) are today with a geographic rep (%s); they go "
                       "to a named rep as new accounts of the named tier.", int(from_geo.sum()),
                       ", ".join(sorted(set(text[from_geo]))))  # fmt: skip
    if to_geo.any():
        logger.warning("NAMED: %d account(s) that are not named are today with a named rep; they "
                       "go to a geographic rep as new accounts.", int(to_geo.sum()))  # fmt: skip
    return int(from_geo.sum())


def _check_locks(acc, lock_field, is_named, ids, rep_ids, rep_named) -> None:
    """A lock to a rep of the other tier is an error naming the accounts."""
    if not lock_field or lock_field not in acc.columns:
        return
    text = np.array(["" if v is None or (isinstance(v, float) and math.isnan(v)) else
                     str(v).strip() for v in acc[lock_field].to_numpy()], dtype=object)  # fmt: skip
    bad = (is_named & np.isin(text, list(rep_ids[~rep_named]))) | (
        ~is_named & np.isin(text, list(rep_ids[rep_named]))
    )
    if bad.any():
        msg = (f"LOCK_FIELD: accounts {', '.join(ids[bad][:10])} are locked to a rep of the other "
               "tier (named accounts to a named rep only); unlock them or change their named flag.")  # fmt: skip
        raise InvalidInputError(msg)


def _keep_tier_field(accounts):
    """The accounts with an input field ``tier`` kept as ``input_tier`` (the plan writes one)."""
    from .territories import keep_input_fields

    return keep_input_fields(accounts, ("tier",))


def _capacity(reps, capacity_field) -> np.ndarray:
    if not capacity_field:
        return np.ones(len(reps))
    cap = pd.to_numeric(reps[capacity_field], errors="coerce").to_numpy(float)
    if np.isnan(cap).any() or (cap <= 0).any():
        msg = f"REP_CAPACITY_FIELD: '{capacity_field}' must be a positive number for every rep."
        raise InvalidInputError(msg)
    return cap


def _only(func, arguments: dict) -> dict:
    """The keyword arguments ``func`` takes (reps and pair arguments are passed apart)."""
    names = set(inspect.signature(func).parameters) - {
        "reps",
        "pair_allowed",
        "pair_rule",
        "pair_cost",
    }
    return {k: v for k, v in arguments.items() if k in names}


def _log_spellings(raw: np.ndarray, norm: np.ndarray, key: str) -> None:
    groups: dict[str, set[str]] = {}
    for r, s in zip(raw, norm):
        if s is not None:
            groups.setdefault(s, set()).add(str(r).strip())
    merged = {s: sorted(v) for s, v in groups.items() if len(v) > 1 or next(iter(v)) != s}
    if merged:
        logger.info("%s: segments normalised (case, spaces, underscores, hyphens): %s.", key,
                    "; ".join(f"{' / '.join(v)} -> {s}" for s, v in sorted(merged.items())))  # fmt: skip


def _mark_tier(plan, tier: str, coverage: Coverage):
    """Add the ``tier`` column to a one-tier plan's outputs."""
    for frame in (plan.accounts, plan.territories, plan.centres, plan.summary):
        if frame is not None:
            frame["tier"] = tier
    return plan


# ----------------------------------------------------------------------------- merging


def merge_tiers(parts: list, *, n: int, current_field: str | None = None,
                previous: gpd.GeoDataFrame | None = None, quota_total: float | None = None):  # fmt: skip
    """One plan from the tiers' plans ``[(tier, account positions, plan)]``: accounts in input
    order, territories (named territories without a polygon), centres and summary with a
    ``tier`` column, each tier's KPIs in its summary rows and in ``kpis`` as ``<tier>_<kpi>``.

    Plan-level figures: OBJECTIVE and LOWER_BOUND are the geographic tier's (the named tier's
    objective counts moves, in other units), GAP_PCT and MAX_DEVIATION_PCT the largest of the
    tiers, MOVED the sum.
    """
    from .territories import TerritoryPlan

    if len(parts) == 1:
        return _mark_tier(parts[0][2], parts[0][0], Coverage())
    acc, ter, cen, summ, kpis = [], [], [], [], {}
    for tier, pos, plan in parts:
        a = plan.accounts.copy()
        a.index = pos
        acc.append(a.assign(tier=tier))
        t = plan.territories.assign(tier=tier)
        s = plan.summary.assign(tier=tier)
        if tier == TIER_NAMED:  # no polygon: named accounts are not a geographic area
            t = t.set_geometry(gpd.GeoSeries([None] * len(t), index=t.index, crs=t.crs))
            t["pieces"] = s["pieces"] = 0
            plan.kpis["split_territories"] = 0
        ter.append(t)
        cen.append(plan.centres.assign(tier=tier))
        summ.append(s)
        for key, value in plan.kpis.items():
            kpis[f"{tier}_{key}"] = value
    crs = parts[0][2].accounts.crs
    accounts = gpd.GeoDataFrame(pd.concat(acc).sort_index(), crs=crs)
    if previous is not None:
        accounts.index = previous.index[:n]
    territories = gpd.GeoDataFrame(
        pd.concat(ter, ignore_index=True), crs=parts[0][2].territories.crs
    )
    centres = gpd.GeoDataFrame(pd.concat(cen, ignore_index=True), crs=parts[0][2].centres.crs)
    summary = pd.concat(summ, ignore_index=True)
    if quota_total is not None and "quota" not in summary.columns:
        first = [c for c in summary.columns if c.endswith("_total") and c != "travel_total"][:1]
        if first:
            v = summary[first[0]].to_numpy(float)
            summary["quota"] = np.round(quota_total * v / max(v.sum(), 1e-12), 2)
    palette.colour_plan(accounts, territories, centres, previous=previous,
                        current_field=current_field)  # fmt: skip
    summary[palette.COLOUR_FIELD] = summary["territory_id"].map(
        dict(zip(territories["territory_id"], territories[palette.COLOUR_FIELD]))
    )
    by = {tier: plan for tier, _, plan in parts}
    geo = by.get(TIER_GEOGRAPHIC) or parts[0][2]
    gap = max(p.gap_pct for p in by.values())
    dev = max(p.max_deviation_pct for p in by.values())
    moved = sum(p.moved for p in by.values())
    kpis.update(gap_pct=round(gap, 4), max_deviation_pct=round(dev, 2), moved=moved,
                split_territories=int(geo.kpis.get("split_territories", 0)),
                bound_scope=geo.bound_scope, tiers=",".join(by))  # fmt: skip
    for tier, plan in by.items():
        logger.info("Tier %s: %d territories, gap %.2f%%, largest deviation %.2f%% (against the "
                    "tier's own targets), %d moved.", tier, len(plan.summary), plan.gap_pct,
                    plan.max_deviation_pct, plan.moved)  # fmt: skip
    return TerritoryPlan(
        accounts=accounts, territories=territories, centres=centres, summary=summary,
        objective=geo.objective, lower_bound=geo.lower_bound, gap_pct=gap,
        max_deviation_pct=dev, moved=moved, kpis=kpis, parameters=geo.parameters,
        bound_scope=geo.bound_scope,
    )  # fmt: skip
