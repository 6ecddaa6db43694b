"""The gzip form of an entity tag, which the gateway writes and the servers read back."""

import pytest
from svc_common.entity_tags import gzip_form, identity_opaque


@pytest.mark.parametrize(
    ("tag", "form"),
    [
        ('"5.3"', '"5.3-gzip"'),
        ('""', '"-gzip"'),
        ('W/"abc"', 'W/"abc"'),  # a weak tag already allows another encoding
        ("garbage", "garbage"),
    ],
)
def test_only_a_strong_tag_gets_a_gzip_form(tag: str, form: str) -> None:
    assert gzip_form(tag) == form


def test_the_gzip_form_reads_back_as_the_tag_it_came_from() -> None:
    assert identity_opaque(gzip_form('"5.3"').strip('"')) == "5.3"
    assert identity_opaque("5.3") == "5.3"
