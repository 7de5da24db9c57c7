"""Content negotiation (TAXII 2.1 §1.6.8): which Accept and Content-Type values the node serves."""

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"


def stix_media_type(spec_version: str) -> str:
    return f"application/stix+json;version={spec_version}"


# A client may omit the version parameter; without one the newest version the server speaks is meant.
_ACCEPTABLE = {
    ("application", "taxii+json"),
    ("application", "json"),
    ("application", "*"),
    ("*", "*"),
}


def _parse_media_range(text: str) -> tuple[str, str, dict[str, str]]:
    kind, _, rest = text.strip().partition(";")
    main, _, sub = kind.strip().lower().partition("/")
    params = {}
    for part in rest.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"')
    return main, sub, params


def _quality(params: dict[str, str]) -> float:
    try:
        return float(params.get("q", "1"))
    except ValueError:
        return 0.0


def _is_taxii_21(main: str, sub: str, params: dict[str, str]) -> bool:
    if (main, sub) not in _ACCEPTABLE:
        return False
    version = params.get("version")
    return version is None or version == "2.1" or (main, sub) != ("application", "taxii+json")


def accepts_taxii(accept_header: str | None) -> bool:
    """True when the Accept header admits a TAXII 2.1 response with a non-zero q-weight."""
    if not accept_header or not accept_header.strip():
        return True
    for media_range in accept_header.split(","):
        if not media_range.strip():
            continue
        main, sub, params = _parse_media_range(media_range)
        if _quality(params) > 0 and _is_taxii_21(main, sub, params):
            return True
    return False


def is_taxii_content(content_type: str | None) -> bool:
    """True when a request body is declared as a TAXII 2.1 envelope."""
    if not content_type:
        return False
    main, sub, params = _parse_media_range(content_type)
    if (main, sub) != ("application", "taxii+json"):
        return False
    return params.get("version", "2.1") == "2.1"
