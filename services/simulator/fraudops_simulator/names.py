"""The fraud pattern names, importable without NumPy (the CLI's help text needs them at start-up)."""

PATTERN_NAMES: tuple[str, ...] = (
    "account_takeover",
    "money_mule_layering",
    "burst_fraud",
    "card_testing",
    "late_night_fraud",
    "impossible_travel",
    "high_risk_merchant",
    "unexpected_international",
    "overdraft_probing",
    "new_account_fraud",
    "compromised_terminal",
    "cnp_credential_leak",
    "amount_anomaly",
    "shared_device",
    "app_scam",
    "bust_out",
    "rogue_terminal",
)
