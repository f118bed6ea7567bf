"""Legit background traffic for a run of days, fully vectorised.

Each day's planned legit count is spread over customers in proportion to their activity
(weekday, payday and account-open effects included); then every row draws its kind (purchase,
ATM, transfer, bill, refund, gambling/crypto habit, money coming in), local time from the
customer's hour profile, merchant (usual ones mostly, sometimes new ones, at the trip
destination when away), amount, channel, device, IP and authorisation from the customer's habits.
Salaries arrive as DEPOSIT rows on payday, and transfers between two of our customers also
appear as a DEPOSIT on the receiving account (whose counterparty is the payer).
"""

from __future__ import annotations

import calendar
from datetime import timedelta

import numpy as np

from fraudops_simulator.customers import HOUR_CDF, PERSONA_CDF, _categorical
from fraudops_simulator.geography import (
    CITIES,
    DATACENTER_FIRST_OCTETS,
    ip_prefix_24,
    isp_first_octets,
)
from fraudops_simulator.merchants import AMOUNT_SIGMA, MEDIAN_AMOUNT, ONLINE_SHARE
from fraudops_simulator.pacing import IGNORED, MOVABLE
from fraudops_simulator.params import DAY_S
from fraudops_simulator.rows import (
    AUTH,
    CAT,
    CH,
    EXTERNAL_BENEFICIARY_BASE,
    TT,
    Rows,
    concat_rows,
    make_rows,
    n_rows,
    take_rows,
)
from fraudops_simulator.trips import AWAY
from fraudops_simulator.world import TRANSIENT_DEVICE_BASE, Place, World

# weekday factor per hour profile (Mon..Sun): shops are closed on Sundays in Germany
_WEEKDAY = np.array(
    [
        [1.0, 1.0, 1.0, 1.0, 1.05, 1.15, 0.55],
        [0.95, 0.95, 1.0, 1.0, 1.2, 1.2, 0.7],
        [0.9, 0.9, 0.95, 1.0, 1.3, 1.3, 0.8],
    ]
)
PURCHASE, ATM, TRANSFER, BILL, REFUND, HABIT, INCOMING = range(7)


def _days_to_payday(world: World, day: int) -> tuple[np.ndarray, np.ndarray]:
    """Days since the last payday and days until the next one, per customer, on `day`.

    A payday after the end of a short month falls on its last day.
    """
    date = world.config.start + timedelta(days=day)
    month_days = calendar.monthrange(date.year, date.month)[1]
    previous = date.replace(day=1) - timedelta(days=1)
    payday = np.minimum(world.customers.payday.astype(np.int64), month_days)
    since = date.day - payday
    since = np.where(since < 0, since + previous.day, since)
    until = payday - date.day
    until = np.where(until < 0, until + month_days, until)
    return since, until


def day_weights(world: World, day: int) -> np.ndarray:
    """Relative legit volume of each customer on `day` (0 outside the account's open period)."""
    c = world.customers
    weekday = (world.config.start + timedelta(days=day)).weekday()
    since, until = _days_to_payday(world, day)
    payday_factor = np.where(since <= 3, 1.3, np.where((until <= 4) & (c.balance_level == 0), 0.8, 1.0))
    is_open = (c.opened_s < (day + 1) * DAY_S) & (c.closed_s > day * DAY_S)
    return c.activity * _WEEKDAY[c.profile, weekday] * payday_factor * is_open


def salary_customers(world: World, day: int) -> np.ndarray:
    """Customers whose salary arrives on `day` (a DEPOSIT row: a payday that features can see)."""
    c = world.customers
    since, _ = _days_to_payday(world, day)
    is_open = (c.opened_s < day * DAY_S) & (c.closed_s > (day + 1) * DAY_S)
    return np.flatnonzero((since == 0) & (c.salary > 0) & is_open)


def background_days(world: World, days: range, legit_per_day: np.ndarray, rng: np.random.Generator) -> Rows:
    """The legit rows of consecutive days (their planned counts, plus salary deposits), in one pass.

    Each day's count is spread over customers by their weights for that day; everything after
    that is vectorised over the whole batch of days, which is what keeps the simulator fast.
    """
    c = world.customers
    customers, day_of_row = [], []
    for day in days:
        weights = day_weights(world, day)
        n_legit = int(legit_per_day[day])
        counts = (
            rng.multinomial(n_legit, weights / weights.sum()) if n_legit else np.zeros(c.n, dtype=np.int64)
        )
        customers.append(np.repeat(np.arange(c.n, dtype=np.int64), counts))
        day_of_row.append(np.full(len(customers[-1]), day, dtype=np.int64))
    customer, row_day = np.concatenate(customers), np.concatenate(day_of_row)
    n = len(customer)
    hour = _categorical(HOUR_CDF[c.profile[customer]], rng.random(n)) + rng.random(n)
    t = row_day * DAY_S + np.mod((hour - c.utc_offset_h[customer]) * 3600.0, DAY_S)
    t = np.maximum(t, c.opened_s[customer] + rng.uniform(60.0, 7200.0, n))  # first day of a new account
    t = world.settle_journeys(customer, t, rng)
    until_payday = np.stack([_days_to_payday(world, d)[1].astype(np.int16) for d in days])
    rows = _fill(world, customer, t, until_payday[row_day - days.start, customer], rng)
    legs = incoming_legs(world, rows, rng)
    if n_rows(legs):
        # the receiving legs take the place of as many purchases: the days keep their planned count
        purchases = np.flatnonzero(rows["ttype"] == TT["PURCHASE"])
        if len(purchases) >= n_rows(legs):
            keep = np.ones(n, dtype=bool)
            keep[rng.choice(purchases, size=n_rows(legs), replace=False)] = False
            rows = concat_rows([take_rows(rows, keep), legs])
    return concat_rows([rows, *(_salaries(world, d, rng) for d in days)])


def incoming_legs(world: World, transfers: Rows, rng: np.random.Generator) -> Rows:
    """The receiving side of transfers between our own customers: a DEPOSIT whose counterparty is the payer.

    Fan-in (how many payers sent money, and how fast it left again) is only visible through
    these rows on the receiving account, for mules and for landlords alike.
    """
    c = world.customers
    payee = transfers["beneficiary"]
    internal = (transfers["ttype"] == TT["TRANSFER"]) & (payee >= 0) & (payee < EXTERNAL_BENEFICIARY_BASE)
    internal &= transfers["auth"] == AUTH["APPROVED"]
    index = np.flatnonzero(internal)
    receiver = payee[index]
    t = transfers["t"][index] + rng.uniform(1.0, 30.0, len(index))
    is_open = (c.opened_s[receiver] < t) & (c.closed_s[receiver] > t)
    index, receiver, t = index[is_open], receiver[is_open], t[is_open]
    return deposits(world, receiver, t, transfers["amount"][index], payer=transfers["customer"][index],
                    is_fraud=transfers["is_fraud"][index], pattern=transfers["pattern"][index])  # fmt: skip


def deposits(
    world: World, customer: np.ndarray, t: np.ndarray, amount: np.ndarray, *, payer: np.ndarray, **extra
) -> Rows:
    """Incoming money on `customer`'s account; `payer` is an account index or an external code."""
    return make_rows(
        len(customer), t=t, customer=customer, amount=amount, beneficiary=payer, category=CAT["P2P"],
        channel=CH["WEB"], ttype=TT["DEPOSIT"], utc_offset_h=world.customers.utc_offset_h[customer], **extra,
    )  # fmt: skip


def _fill(
    world: World, customer: np.ndarray, t: np.ndarray, until_payday: np.ndarray, rng: np.random.Generator
) -> Rows:
    """The columns of legit rows for given customers and times."""
    c, m = world.customers, world.merchants
    n = len(customer)
    kind = _categorical(c.kind_cdf[customer], rng.random(n))
    place = world.place(customer, t)
    away = place.phase == AWAY

    # merchant: usual ones mostly (skewed to the favourite), else a new one from the persona's mix
    slot = np.floor(c.n_usual[customer] * rng.random(n) ** 1.7).astype(np.int64)
    merchant = c.usual_merchants[customer, slot].astype(np.int64)
    explore = rng.random(n) < 0.25
    category = _categorical(PERSONA_CDF[c.persona[customer]], rng.random(n))
    pos = m.pick_pos(place.city, category, rng.random(n))
    online = m.pick_online(category, rng.random(n))
    new_merchant = np.where(
        ((rng.random(n) < ONLINE_SHARE[category]) | (pos < 0)) & (online >= 0), online, pos
    )
    merchant = np.where(explore & (new_merchant >= 0), new_merchant, merchant)
    # away from home a card-present purchase happens at a merchant of the destination
    local_category = m.category[merchant]
    at_destination = m.pick_pos(place.city, local_category, rng.random(n))
    restaurant = m.pick_pos(place.city, np.full(n, CAT["RESTAURANT"]), rng.random(n))
    relocate = away & ~m.is_online[merchant]
    merchant = np.where(relocate, np.where(at_destination >= 0, at_destination, restaurant), merchant)

    is_refund = kind == REFUND
    merchant = np.where(kind == HABIT, c.habit_merchant[customer], merchant)
    merchant = np.where(kind == BILL, c.bill_merchant[customer], merchant)
    atm_merchant = m.pick_pos(place.city, np.full(n, CAT["CASH"]), rng.random(n))
    merchant = np.where(kind == ATM, atm_merchant, merchant)
    merchant = np.where((kind == TRANSFER) | (kind == INCOMING), -1, merchant)
    has_merchant = merchant >= 0
    safe_merchant = np.clip(merchant, 0, None)
    category = np.where(has_merchant, m.category[safe_merchant], CAT["P2P"])
    online_merchant = has_merchant & m.is_online[safe_merchant]

    # channel and type
    app = c.app_user[customer] & (rng.random(n) < 0.7)
    digital_channel = np.where(app, CH["MOBILE_APP"], CH["WEB"])
    channel = np.where(online_merchant, digital_channel, CH["POS"])
    channel = np.where(kind == ATM, CH["ATM"], channel)
    channel = np.where(
        kind == TRANSFER, np.where(rng.random(n) < 0.02, CH["BRANCH"], digital_channel), channel
    )
    channel = np.where((kind == BILL) | (kind == INCOMING), CH["WEB"], channel)
    ttype = np.select(
        [kind == ATM, kind == TRANSFER, kind == BILL, is_refund, kind == INCOMING],
        [TT["WITHDRAWAL"], TT["TRANSFER"], TT["PAYMENT"], TT["REFUND"], TT["DEPOSIT"]],
        default=TT["PURCHASE"],
    )
    terminal = np.where(channel == CH["POS"], m.pick_terminal(safe_merchant, rng.random(n)), -1)
    use_usual_atm = (kind == ATM) & ~away & (rng.random(n) < 0.7) & (c.usual_atm_terminal[customer] >= 0)
    terminal = np.where(use_usual_atm, c.usual_atm_terminal[customer], terminal)
    terminal = np.where(
        kind == ATM,
        np.where(terminal >= 0, terminal, m.pick_terminal(safe_merchant, rng.random(n))),
        terminal,
    )

    amount, beneficiary = _amounts(world, customer, kind, category, rng)
    auth = _authorisation(world, customer, until_payday, kind, channel, rng)
    digital = ((channel == CH["MOBILE_APP"]) | (channel == CH["WEB"])) & (kind != INCOMING)
    nowhere = kind == INCOMING  # money arriving has no place, device or IP of ours
    device, ip, lat, lon, country, offset, vpn = _digital_identity(world, customer, t, channel, place, rng)

    card_slot = (rng.random(n) < 0.3) & (c.cards[customer, 1] >= 0)
    card = np.where(card_slot, c.cards[customer, 1], c.cards[customer, 0])
    card = np.where((kind == TRANSFER) | (kind == INCOMING), -1, card)
    card_present = has_merchant & ~online_merchant & (channel != CH["WEB"])
    return make_rows(
        n,
        t=t,
        customer=customer,
        card=card,
        merchant=merchant,
        category=category,
        terminal=terminal,
        amount=amount,
        channel=channel,
        ttype=ttype,
        auth=auth,
        country=np.where(nowhere, -1, np.where(has_merchant, m.country[safe_merchant], country)),
        lat=np.where(nowhere, np.nan, np.where(card_present, m.lat[safe_merchant], lat)),
        lon=np.where(nowhere, np.nan, np.where(card_present, m.lon[safe_merchant], lon)),
        utc_offset_h=np.where(card_present, m.utc_offset_h[safe_merchant], offset),
        device=np.where(digital, device, -1),
        ip=np.where(digital, ip, -1),
        beneficiary=beneficiary,
        credential_change=np.where(digital, world.credential_change_before(customer, t), np.nan),
        paced=np.where(nowhere | (digital & vpn), IGNORED, MOVABLE),
    )  # fmt: skip


def _amounts(
    world: World, customer: np.ndarray, kind: np.ndarray, category: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Log-normal amounts on the customer's own scale; regular payees get their usual amount."""
    c = world.customers
    n = len(customer)
    scale = c.amount_log_scale[customer]
    amount = MEDIAN_AMOUNT[category] * np.exp(0.8 * scale + AMOUNT_SIGMA[category] * rng.standard_normal(n))
    big = rng.random(n) < 0.004  # the occasional big-ticket purchase
    amount = np.where(big & (kind == PURCHASE), amount * rng.uniform(3, 12, n), amount)
    amount = np.where(kind == REFUND, amount * 0.6, amount)
    amount = np.where(kind == BILL, 85 * np.exp(0.3 * scale + 0.3 * rng.standard_normal(n)), amount)
    cash = np.maximum(20.0, np.round(100 * np.exp(0.5 * scale + 0.6 * rng.standard_normal(n)) / 20) * 20)
    amount = np.where(kind == ATM, cash, amount)

    slot = np.floor(rng.random(n) * np.maximum(c.n_beneficiaries[customer], 1)).astype(np.int64)
    regular = c.beneficiaries[customer, slot]
    new_payee = (rng.random(n) < 0.04) | (regular < 0)
    one_off = EXTERNAL_BENEFICIARY_BASE + rng.integers(10**11, 10**12, n)
    is_transfer = kind == TRANSFER
    beneficiary = np.where(is_transfer, np.where(new_payee, one_off, regular), -1)
    incoming = kind == INCOMING
    # money coming in: half the time from a regular (external) payee paying back, else a one-off payer
    paying_back = (regular >= EXTERNAL_BENEFICIARY_BASE) & (rng.random(n) < 0.5)
    beneficiary = np.where(incoming, np.where(paying_back, regular, one_off), beneficiary)
    amount = np.where(incoming, 80 * np.exp(0.8 * scale + 0.9 * rng.standard_normal(n)), amount)
    usual = c.beneficiary_amount[customer, slot] * np.where(
        slot == 0, 1.0, np.exp(0.15 * rng.standard_normal(n))
    )
    payee_amount = np.where(new_payee, 150 * np.exp(scale + rng.standard_normal(n)), usual)
    amount = np.where(is_transfer, payee_amount, amount)
    return np.maximum(np.round(amount, 2), 0.5), beneficiary


def _authorisation(
    world: World,
    customer: np.ndarray,
    until_payday: np.ndarray,
    kind: np.ndarray,
    channel: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Mostly approved; low balances get declined before payday, PINs get mistyped."""
    c = world.customers
    n = len(customer)
    short = (c.balance_level[customer] == 0) & (until_payday <= 5)
    u = rng.random(n)
    insufficient = u < np.where(short, 0.03, 0.002)
    wrong_pin = (kind == ATM) & (u > 0.985)
    typo = (channel == CH["WEB"]) & (u > 0.997)
    other = u > 0.9985
    auth = np.select(
        [insufficient & (kind != REFUND), wrong_pin, typo, other],
        [
            AUTH["DECLINED_INSUFFICIENT_FUNDS"],
            AUTH["DECLINED_WRONG_PIN"],
            AUTH["DECLINED_INVALID_CARD"],
            AUTH["DECLINED_OTHER"],
        ],
        default=AUTH["APPROVED"],
    )
    return np.where((kind == REFUND) | (kind == INCOMING), AUTH["APPROVED"], auth)


def _digital_identity(
    world: World,
    customer: np.ndarray,
    t: np.ndarray,
    channel: np.ndarray,
    place: Place,
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """Device, IP and IP-geolocated position of app and web rows.

    Includes the legit noise fraud detection has to live with: shared household tablets, one-off
    devices (a work PC, a friend's phone), hotel Wi-Fi abroad and VPN exits in other countries.
    """
    c = world.customers
    n = len(customer)
    phone = world.phone(customer, t)
    laptop = c.devices[customer, 1]
    device = np.where((channel == CH["WEB"]) & (laptop >= 0), laptop, phone)
    tablet = (c.household_device[customer] >= 0) & (rng.random(n) < 0.15)
    device = np.where(tablet, c.household_device[customer], device)
    one_off = rng.random(n) < 0.004
    device = np.where(one_off, TRANSIENT_DEVICE_BASE + rng.integers(1 << 39, 1 << 40, n), device)

    host = rng.integers(1, 255, n)
    mobile_network = (channel == CH["MOBILE_APP"]) & (rng.random(n) < 0.5)
    prefix = np.where(mobile_network, c.carrier_prefix[customer], c.ip_prefix[customer])
    foreign_wifi = ip_prefix_24(isp_first_octets(place.country), rng)
    prefix = np.where(place.phase == AWAY, foreign_wifi, prefix)
    lat, lon = place.lat, place.lon  # the IP geolocates to where the customer is (home or hotel)
    country, offset = place.country, place.utc_offset_h
    vpn = rng.random(n) < 0.003
    if vpn.any():
        exit_city = rng.choice(CITIES.n, size=n, p=CITIES.travel_weight / CITIES.travel_weight.sum())
        dc = ip_prefix_24(DATACENTER_FIRST_OCTETS[rng.integers(0, len(DATACENTER_FIRST_OCTETS), n)], rng)
        prefix = np.where(vpn, dc, prefix)
        lat = np.where(vpn, CITIES.lat[exit_city], lat)
        lon = np.where(vpn, CITIES.lon[exit_city], lon)
        country = np.where(vpn, CITIES.country[exit_city], country)
    return device, prefix | host, np.round(lat, 4), np.round(lon, 4), country, offset, vpn


def _salaries(world: World, day: int, rng: np.random.Generator) -> Rows:
    """Salary deposits of the customers paid on `day`, early in the local morning."""
    c = world.customers
    payees = salary_customers(world, day)
    k = len(payees)
    t = day * DAY_S + (rng.uniform(3.0, 7.0, k) - c.utc_offset_h[payees]) * 3600.0
    return make_rows(
        k,
        t=t,
        customer=payees,
        category=CAT["OTHER"],
        amount=np.round(c.salary[payees] * np.exp(rng.normal(0, 0.02, k)), 2),
        channel=CH["WEB"],
        ttype=TT["DEPOSIT"],
        utc_offset_h=c.utc_offset_h[payees],
        beneficiary=c.employer[payees],
    )
