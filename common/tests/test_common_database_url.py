"""DATABASE_URLs as providers hand them out: libpq's SSL words and PgBouncer's cache setting."""

import ssl
from pathlib import Path

import pytest
from svc_common.database_url import async_url, ssl_for, translate_for_asyncpg

CA = ssl.get_default_verify_paths().cafile


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("disable", False), ("allow", "allow"), ("prefer", "prefer"), ("require", "require")],
)
def test_sslmodes_asyncpg_knows_by_name_pass_through(mode: str, expected: object) -> None:
    assert ssl_for(mode) == expected


def test_verify_full_checks_the_chain_and_the_name_verify_ca_only_the_chain() -> None:
    full = ssl_for("verify-full", rootcert=CA)
    chain = ssl_for("verify-ca", rootcert=CA)
    assert isinstance(full, ssl.SSLContext)
    assert isinstance(chain, ssl.SSLContext)
    assert (full.check_hostname, full.verify_mode) == (True, ssl.CERT_REQUIRED)
    assert (chain.check_hostname, chain.verify_mode) == (False, ssl.CERT_REQUIRED)


def test_an_unknown_sslmode_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="sslmode='requried'"):
        ssl_for("requried")


def test_the_url_keeps_libpq_words_and_the_connect_gets_asyncpg_s() -> None:
    url = async_url("postgresql://u@db/x?sslmode=verify-full&sslrootcert=" + str(CA))
    assert url.drivername == "postgresql+asyncpg"
    params = dict(url.query)
    translate_for_asyncpg(None, None, [], params)  # type: ignore[arg-type]
    assert "sslmode" not in params
    assert "sslrootcert" not in params
    assert isinstance(params["ssl"], ssl.SSLContext)


def test_a_statement_cache_of_zero_turns_both_caches_off_with_unique_names() -> None:
    url = async_url("postgresql://u@pgbouncer/x", statement_cache_size=0)
    assert url.query["prepared_statement_cache_size"] == "0"
    params = {"statement_cache_size": url.query["statement_cache_size"]}
    translate_for_asyncpg(None, None, [], params)  # type: ignore[arg-type]
    assert params["statement_cache_size"] == 0
    names = {params["prepared_statement_name_func"]() for _ in range(3)}  # type: ignore[operator]
    assert len(names) == 3


def test_sqlite_urls_get_no_postgres_settings(tmp_path: Path) -> None:
    url = async_url(f"sqlite:///{tmp_path}/app.db", statement_cache_size=0)
    assert dict(url.query) == {}
