"""Where transactions happen: cities, countries, time zones, IP ranges and distances.

Customers of the simulated bank (issuer country DE) live around the home cities; travellers and
fraudsters also appear in the destination cities. Time-zone offsets are fixed summer offsets
(the default simulation spans August–October), which keeps local hours exact and cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

#: The country that issues the cards: `is_international` means "outside this country".
ISSUER_COUNTRY = "DE"

EARTH_RADIUS_KM = 6371.0

# name, country, lat, lon, utc offset (h), home weight, travel weight, fraud-origin weight
_CITY_ROWS: tuple[tuple[str, str, float, float, int, float, float, float], ...] = (
    # home cities: Germany (weights ~ population in millions)
    ("Berlin", "DE", 52.520, 13.405, 2, 3.6, 1.0, 0.3),
    ("Hamburg", "DE", 53.551, 9.994, 2, 1.8, 0.6, 0.1),
    ("Munich", "DE", 48.137, 11.575, 2, 1.5, 0.6, 0.1),
    ("Cologne", "DE", 50.938, 6.960, 2, 1.1, 0.4, 0.1),
    ("Frankfurt", "DE", 50.110, 8.682, 2, 0.75, 0.4, 0.2),
    ("Stuttgart", "DE", 48.776, 9.183, 2, 0.63, 0.2, 0.0),
    ("Duesseldorf", "DE", 51.227, 6.773, 2, 0.62, 0.2, 0.0),
    ("Leipzig", "DE", 51.340, 12.375, 2, 0.6, 0.2, 0.0),
    ("Dortmund", "DE", 51.514, 7.466, 2, 0.59, 0.1, 0.0),
    ("Essen", "DE", 51.456, 7.012, 2, 0.58, 0.1, 0.0),
    ("Bremen", "DE", 53.079, 8.802, 2, 0.57, 0.1, 0.0),
    ("Dresden", "DE", 51.050, 13.737, 2, 0.56, 0.3, 0.0),
    ("Hanover", "DE", 52.375, 9.732, 2, 0.54, 0.1, 0.0),
    ("Nuremberg", "DE", 49.452, 11.077, 2, 0.52, 0.2, 0.0),
    ("Duisburg", "DE", 51.434, 6.762, 2, 0.5, 0.0, 0.0),
    ("Bochum", "DE", 51.481, 7.216, 2, 0.36, 0.0, 0.0),
    ("Wuppertal", "DE", 51.256, 7.150, 2, 0.35, 0.0, 0.0),
    ("Bielefeld", "DE", 52.030, 8.532, 2, 0.33, 0.0, 0.0),
    ("Bonn", "DE", 50.737, 7.098, 2, 0.33, 0.1, 0.0),
    ("Muenster", "DE", 51.960, 7.626, 2, 0.32, 0.1, 0.0),
    ("Mannheim", "DE", 49.487, 8.466, 2, 0.31, 0.0, 0.0),
    ("Karlsruhe", "DE", 49.007, 8.404, 2, 0.31, 0.0, 0.0),
    ("Augsburg", "DE", 48.371, 10.898, 2, 0.3, 0.0, 0.0),
    ("Wiesbaden", "DE", 50.078, 8.240, 2, 0.28, 0.0, 0.0),
    ("Kiel", "DE", 54.323, 10.123, 2, 0.25, 0.1, 0.0),
    ("Rostock", "DE", 54.092, 12.099, 2, 0.21, 0.2, 0.0),
    ("Freiburg", "DE", 47.999, 7.842, 2, 0.23, 0.1, 0.0),
    ("Erfurt", "DE", 50.978, 11.029, 2, 0.21, 0.0, 0.0),
    ("Mainz", "DE", 49.993, 8.247, 2, 0.22, 0.0, 0.0),
    ("Regensburg", "DE", 49.013, 12.102, 2, 0.15, 0.1, 0.0),
    # home cities: neighbouring countries (cross-border customers of the DE bank)
    ("Vienna", "AT", 48.208, 16.373, 2, 0.45, 0.6, 0.1),
    ("Salzburg", "AT", 47.809, 13.055, 2, 0.08, 0.4, 0.0),
    ("Zurich", "CH", 47.377, 8.541, 2, 0.2, 0.3, 0.1),
    ("Basel", "CH", 47.560, 7.589, 2, 0.12, 0.1, 0.0),
    ("Amsterdam", "NL", 52.368, 4.904, 2, 0.25, 0.8, 0.4),
    ("Rotterdam", "NL", 51.924, 4.478, 2, 0.1, 0.1, 0.1),
    ("Strasbourg", "FR", 48.573, 7.752, 2, 0.1, 0.2, 0.0),
    ("Luxembourg", "LU", 49.612, 6.130, 2, 0.12, 0.1, 0.1),
    ("Copenhagen", "DK", 55.676, 12.568, 2, 0.1, 0.4, 0.0),
    ("Prague", "CZ", 50.075, 14.438, 2, 0.15, 0.6, 0.3),
    ("Poznan", "PL", 52.406, 16.925, 2, 0.1, 0.1, 0.2),
    ("Brussels", "BE", 50.850, 4.352, 2, 0.1, 0.2, 0.2),
    # destinations: holidays, business trips and cash-out places of fraud rings
    ("London", "GB", 51.507, -0.128, 1, 0.0, 1.0, 1.0),
    ("Paris", "FR", 48.857, 2.352, 2, 0.0, 0.9, 0.4),
    ("Madrid", "ES", 40.417, -3.704, 2, 0.0, 0.5, 0.3),
    ("Barcelona", "ES", 41.385, 2.173, 2, 0.0, 0.8, 0.3),
    ("Palma", "ES", 39.570, 2.650, 2, 0.0, 1.0, 0.0),
    ("Tenerife", "ES", 28.292, -16.629, 1, 0.0, 0.5, 0.0),
    ("Rome", "IT", 41.903, 12.496, 2, 0.0, 0.7, 0.2),
    ("Milan", "IT", 45.464, 9.190, 2, 0.0, 0.4, 0.3),
    ("Lisbon", "PT", 38.722, -9.139, 1, 0.0, 0.5, 0.1),
    ("Athens", "GR", 37.984, 23.728, 3, 0.0, 0.5, 0.2),
    ("Split", "HR", 43.508, 16.440, 2, 0.0, 0.6, 0.0),
    ("Antalya", "TR", 36.897, 30.713, 3, 0.0, 0.8, 0.1),
    ("Istanbul", "TR", 41.008, 28.978, 3, 0.0, 0.4, 0.8),
    ("Nice", "FR", 43.710, 7.262, 2, 0.0, 0.3, 0.1),
    ("Stockholm", "SE", 59.329, 18.069, 2, 0.0, 0.2, 0.1),
    ("Budapest", "HU", 47.498, 19.040, 2, 0.0, 0.3, 0.4),
    ("Warsaw", "PL", 52.230, 21.012, 2, 0.0, 0.3, 0.5),
    ("Bucharest", "RO", 44.427, 26.103, 3, 0.0, 0.1, 1.5),
    ("Sofia", "BG", 42.698, 23.322, 3, 0.0, 0.1, 1.2),
    ("Kyiv", "UA", 50.450, 30.523, 3, 0.0, 0.05, 0.8),
    ("Marrakesh", "MA", 31.629, -7.981, 1, 0.0, 0.2, 0.2),
    ("Dubai", "AE", 25.205, 55.271, 4, 0.0, 0.3, 0.6),
    ("New York", "US", 40.713, -74.006, -4, 0.0, 0.4, 0.6),
    ("Miami", "US", 25.762, -80.192, -4, 0.0, 0.2, 0.6),
    ("Cancun", "MX", 21.162, -86.851, -5, 0.0, 0.2, 0.2),
    ("Bangkok", "TH", 13.756, 100.502, 7, 0.0, 0.3, 0.4),
    ("Hong Kong", "HK", 22.320, 114.169, 8, 0.0, 0.1, 0.7),
    ("Singapore", "SG", 1.352, 103.820, 8, 0.0, 0.1, 0.3),
    ("Manila", "PH", 14.599, 120.984, 8, 0.0, 0.05, 0.8),
    ("Lagos", "NG", 6.524, 3.379, 1, 0.0, 0.02, 1.0),
)

#: Countries of the online merchants that have no city of their own here.
_ONLINE_ONLY_COUNTRIES = ("IE", "MT", "CY", "GI", "CN")


@dataclass(frozen=True)
class Cities:
    """Struct of arrays over the cities (index = city id)."""

    name: tuple[str, ...]
    country: np.ndarray  # int16 index into COUNTRIES
    lat: np.ndarray
    lon: np.ndarray
    utc_offset_h: np.ndarray  # int8
    home_weight: np.ndarray
    travel_weight: np.ndarray
    fraud_weight: np.ndarray

    @property
    def n(self) -> int:
        return len(self.name)


def _build() -> tuple[tuple[str, ...], Cities]:
    codes: list[str] = []
    for row in _CITY_ROWS:
        if row[1] not in codes:
            codes.append(row[1])
    codes.extend(code for code in _ONLINE_ONLY_COUNTRIES if code not in codes)
    columns = list(zip(*_CITY_ROWS, strict=True))
    cities = Cities(
        name=tuple(columns[0]),
        country=np.array([codes.index(code) for code in columns[1]], dtype=np.int16),
        lat=np.array(columns[2], dtype=np.float64),
        lon=np.array(columns[3], dtype=np.float64),
        utc_offset_h=np.array(columns[4], dtype=np.int8),
        home_weight=np.array(columns[5], dtype=np.float64),
        travel_weight=np.array(columns[6], dtype=np.float64),
        fraud_weight=np.array(columns[7], dtype=np.float64),
    )
    return tuple(codes), cities


#: ISO 3166-1 alpha-2 codes; a row's `country` column holds an index into this tuple.
COUNTRIES, CITIES = _build()
ISSUER = COUNTRIES.index(ISSUER_COUNTRY)
HOME_CITIES = np.flatnonzero(CITIES.home_weight > 0)


def country_index(code: str) -> int:
    """The index of an ISO country code in COUNTRIES."""
    return COUNTRIES.index(code)


def haversine_km(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> np.ndarray:
    """Great-circle distance in km (vectorised; NaN where a coordinate is missing)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat = p2 - p1
    dlon = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def city_distance_km(a: int, b: int) -> float:
    """Distance between two city centres."""
    return float(haversine_km(CITIES.lat[a], CITIES.lon[a], CITIES.lat[b], CITIES.lon[b]))


def travel_duration_s(distance_km: ArrayLike) -> np.ndarray:
    """Door-to-door time of a plausible trip: by road/rail below 700 km, else a flight plus airports.

    Legit journeys therefore never exceed ~800 km/h between two transactions, which is what the
    impossible-travel pattern (> 1000 km/h) must stand out from.
    """
    distance_km = np.asarray(distance_km, dtype=np.float64)
    ground_h = distance_km / 90.0 + 0.5
    flight_h = distance_km / 750.0 + 3.0
    return np.where(distance_km < 700.0, ground_h, flight_h) * 3600.0


# --- IP addresses ---------------------------------------------------------------------------
# Synthetic but stable address plans: each country owns a few first octets for fixed-line ISPs and
# one for mobile carriers (carrier-grade NAT: many customers share few prefixes), and there is a
# datacenter range used by VPNs, proxies and fraud infrastructure alike.

_FIRST_OCTET_BASE = 60
DATACENTER_FIRST_OCTETS = np.array([5, 23, 37, 45], dtype=np.int64)


def isp_first_octets(country: np.ndarray) -> np.ndarray:
    """First octet of fixed-line ISP addresses in a country (two blocks per country)."""
    return _FIRST_OCTET_BASE + 2 * np.asarray(country, dtype=np.int64)


def carrier_first_octet(country: np.ndarray) -> np.ndarray:
    """First octet of the mobile-carrier range of a country."""
    return isp_first_octets(country) + 1


def ip_prefix_24(first_octet: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random /24 prefixes (as the integer of a.b.c.0) inside the given first octets."""
    first_octet = np.asarray(first_octet, dtype=np.int64)
    middle = rng.integers(0, 65536, size=first_octet.shape, dtype=np.int64)
    return (first_octet << 24) | (middle << 8)


def carrier_prefixes(country: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of 8 shared carrier-NAT /24 prefixes per country (shared by many customers)."""
    country = np.asarray(country, dtype=np.int64)
    pool = rng.integers(0, 8, size=country.shape, dtype=np.int64)
    return (carrier_first_octet(country) << 24) | ((pool * 131 + 7) << 8)
