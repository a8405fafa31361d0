"""Which time-zone names a fleet repo accepts: IANA `Area/Location` names, and `UTC`.

A maintenance window or a freeze is written in the local time of a place, and the place's
rules (summer time, and their changes) must follow. An abbreviation does not name a place:
`EST` is a fixed UTC-5 in the zone database, so a New York window written in it opens an
hour late all summer; `IST` is India, Ireland or Israel; `CET` is a dozen countries. So
abbreviations, the POSIX-style names (`EST5EDT`) and the other legacy names without a `/`
are refused, with the IANA names they usually stand for. So is `Etc/GMT+5` (a fixed offset
whose sign is the reverse of what it reads as). `UTC` and `Etc/UTC` stay allowed: a window
that should not move with the seasons says so by being in UTC.
"""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from reconciler.fleetrepo.suggestions import closest

#: Names that mean "no daylight saving, no place", which is sometimes what is wanted.
UTC_NAMES = frozenset({"UTC", "Etc/UTC"})

#: The continents and oceans of the zone database: a name under one of them names a place.
PLACE_AREAS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)

_NEW_YORK = ("America/New_York", "America/Toronto")
_CHICAGO = ("America/Chicago", "America/Mexico_City")
_DENVER = ("America/Denver", "America/Phoenix (no summer time)")
_LOS_ANGELES = ("America/Los_Angeles", "America/Vancouver")
_CENTRAL_EUROPE = ("Europe/Berlin", "Europe/Paris", "Europe/Madrid", "Europe/Rome")
_EASTERN_EUROPE = ("Europe/Athens", "Europe/Helsinki", "Europe/Bucharest")
_UTC = ("UTC",)

#: Abbreviations and legacy names operators write, and the IANA names they stand for.
#: Summer-time abbreviations (EDT, CEST) map to the same places as their winter ones.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "EST": _NEW_YORK,
    "EDT": _NEW_YORK,
    "ET": _NEW_YORK,
    "EST5EDT": _NEW_YORK,
    "CST": (*_CHICAGO, "Asia/Shanghai (China Standard Time)"),
    "CDT": _CHICAGO,
    "CST6CDT": _CHICAGO,
    "MST": _DENVER,
    "MDT": _DENVER,
    "MST7MDT": _DENVER,
    "PST": (*_LOS_ANGELES, "Asia/Manila (Philippine Standard Time)"),
    "PDT": _LOS_ANGELES,
    "PST8PDT": _LOS_ANGELES,
    "AKST": ("America/Anchorage",),
    "HST": ("Pacific/Honolulu",),
    "AST": ("America/Halifax (Atlantic)", "Asia/Riyadh (Arabia)"),
    "ADT": ("America/Halifax",),
    "NST": ("America/St_Johns",),
    "BRT": ("America/Sao_Paulo",),
    "ART": ("America/Argentina/Buenos_Aires",),
    "GMT": ("Europe/London (GMT in winter, BST in summer)",),
    "BST": ("Europe/London (British Summer Time)", "Asia/Dhaka (Bangladesh)"),
    "IST": ("Asia/Kolkata (India)", "Europe/Dublin (Ireland)", "Asia/Jerusalem (Israel)"),
    "WET": ("Europe/Lisbon", "Atlantic/Canary"),
    "WEST": ("Europe/Lisbon", "Atlantic/Canary"),
    "CET": _CENTRAL_EUROPE,
    "CEST": _CENTRAL_EUROPE,
    "MET": _CENTRAL_EUROPE,
    "MEST": _CENTRAL_EUROPE,
    "EET": _EASTERN_EUROPE,
    "EEST": _EASTERN_EUROPE,
    "MSK": ("Europe/Moscow",),
    "TRT": ("Europe/Istanbul",),
    "SAST": ("Africa/Johannesburg",),
    "CAT": ("Africa/Maputo", "Africa/Harare"),
    "EAT": ("Africa/Nairobi",),
    "WAT": ("Africa/Lagos",),
    "GST": ("Asia/Dubai (Gulf)",),
    "PKT": ("Asia/Karachi",),
    "ICT": ("Asia/Bangkok", "Asia/Ho_Chi_Minh"),
    "WIB": ("Asia/Jakarta",),
    "SGT": ("Asia/Singapore",),
    "MYT": ("Asia/Kuala_Lumpur",),
    "HKT": ("Asia/Hong_Kong",),
    "PHT": ("Asia/Manila",),
    "JST": ("Asia/Tokyo",),
    "KST": ("Asia/Seoul",),
    "AWST": ("Australia/Perth",),
    "ACST": ("Australia/Adelaide", "Australia/Darwin (no summer time)"),
    "ACDT": ("Australia/Adelaide",),
    "AEST": ("Australia/Sydney", "Australia/Melbourne", "Australia/Brisbane (no summer time)"),
    "AEDT": ("Australia/Sydney", "Australia/Melbourne"),
    "NZST": ("Pacific/Auckland",),
    "NZDT": ("Pacific/Auckland",),
    # Other spellings of UTC in the zone database.
    "UCT": _UTC,
    "Universal": _UTC,
    "Zulu": _UTC,
    "Z": _UTC,
    "GMT0": _UTC,
    "GMT+0": _UTC,
    "GMT-0": _UTC,
    "Greenwich": _UTC,
    "Etc/GMT": _UTC,
    "Etc/UCT": _UTC,
    "Etc/Universal": _UTC,
    "Etc/Zulu": _UTC,
    "Etc/GMT0": _UTC,
    "Etc/GMT+0": _UTC,
    "Etc/GMT-0": _UTC,
    "Etc/Greenwich": _UTC,
}

#: Legacy aliases (links) of the zone database and the names they are links to. They follow
#: the place's rules, but are refused so that one place is always written one way.
LEGACY_ALIASES: dict[str, str] = {
    "US/Eastern": "America/New_York",
    "US/Central": "America/Chicago",
    "US/Mountain": "America/Denver",
    "US/Arizona": "America/Phoenix",
    "US/Pacific": "America/Los_Angeles",
    "US/Alaska": "America/Anchorage",
    "US/Hawaii": "Pacific/Honolulu",
    "Canada/Eastern": "America/Toronto",
    "Canada/Pacific": "America/Vancouver",
    "Singapore": "Asia/Singapore",
    "Japan": "Asia/Tokyo",
    "Hongkong": "Asia/Hong_Kong",
    "PRC": "Asia/Shanghai",
    "ROK": "Asia/Seoul",
    "Eire": "Europe/Dublin",
    "GB": "Europe/London",
    "GB-Eire": "Europe/London",
    "Israel": "Asia/Jerusalem",
    "Turkey": "Europe/Istanbul",
    "Poland": "Europe/Warsaw",
    "Portugal": "Europe/Lisbon",
    "W-SU": "Europe/Moscow",
    "NZ": "Pacific/Auckland",
}

_SHAPE = "a time zone is an IANA name `Area/Location` such as `Europe/Dublin`, or `UTC`"


def check_time_zone(name: str) -> str:
    """``name`` if a window or freeze may be written in it; else ValueError saying what to use."""
    if name in UTC_NAMES:
        return name
    stands_for = ABBREVIATIONS.get(name) or ABBREVIATIONS.get(name.upper())
    if stands_for is not None:
        raise ValueError(_abbreviation_refused(name, stands_for))
    if name.startswith("Etc/GMT") and _is_zone(name):
        offset = name.removeprefix("Etc/GMT").translate(str.maketrans("+-", "-+"))
        raise ValueError(
            f"`{name}` is a fixed offset of UTC{offset} (the zone database reverses the sign) "
            "and follows no place's summer time; name the place, e.g. `America/New_York`, "
            "or write `UTC`"
        )
    if _is_zone(name) and name.split("/", maxsplit=1)[0] in PLACE_AREAS:
        return name
    if _is_zone(name):  # a legacy alias such as `Singapore`, `US/Eastern` or `Eire`
        guess = LEGACY_ALIASES.get(name) or _guess(name)
        instead = f"; write `{guess}`" if guess else ""
        raise ValueError(f"`{name}` is a legacy alias in the zone database{instead} ({_SHAPE})")
    guess = _guess(name)
    suggestion = f"; did you mean `{guess}`?" if guess else f" ({_SHAPE})"
    raise ValueError(f"unknown IANA time zone `{name}`{suggestion}")


def _abbreviation_refused(name: str, stands_for: tuple[str, ...]) -> str:
    if stands_for == _UTC:
        return f"`{name}` is another spelling of UTC; write `UTC`"
    return (
        f"`{name}` is an abbreviation, not an IANA time zone: a window in it would not follow "
        f"the place's summer time, or could mean several places; write {_one_of(stands_for)}"
        "; or `UTC` if the window should ignore summer time"
    )


def _one_of(zones: tuple[str, ...]) -> str:
    """Each zone quoted, its note (if any) after it: `A` (note), `B` or `C`."""
    shown = []
    for entry in zones:
        zone, _, note = entry.partition(" (")
        shown.append(f"`{zone}`" + (f" ({note}" if note else ""))
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return name != "localtime"  # the machine's own zone, not a name every host shares


@functools.cache
def _place_zones() -> dict[str, tuple[str, ...]]:
    """Zone names under each place area, for suggestions."""
    by_area: dict[str, list[str]] = {}
    for zone in available_timezones():
        area = zone.split("/")[0]
        if area in PLACE_AREAS:
            by_area.setdefault(area, []).append(zone)
    return {area: tuple(sorted(zones)) for area, zones in by_area.items()}


def _guess(name: str) -> str | None:
    """The place zone an operator most likely meant by ``name``.

    The area is matched first, then the location within it, so `Europe/Pairs` finds
    `Europe/Paris` rather than a name of similar length on another continent; a name without
    an area (`Singapore`, `Paris`) is matched against locations alone.
    """
    zones = _place_zones()
    area, _, location = name.rpartition("/")
    if area:
        known_area = closest(area.split("/")[0], zones, cutoff=0.7)
        if known_area is not None:
            by_location = {zone.split("/", 1)[1]: zone for zone in zones[known_area]}
            match = closest(name.split("/", 1)[1], by_location, cutoff=0.7)
            if match is not None:
                return by_location[match]
    by_city = {zone.rsplit("/", 1)[1]: zone for area_zones in zones.values() for zone in area_zones}
    match = closest(location.replace(" ", "_"), by_city, cutoff=0.8)
    return by_city[match] if match is not None else None
