"""The demo prints links to the address it really serves, not a fixed port."""

from __future__ import annotations

import pytest

from evalhub.demo import DemoState, served_base_url, summary_lines


@pytest.mark.parametrize(
    ("addr", "url"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("8001", "http://127.0.0.1:8001"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("[::]:9000", "http://[::1]:9000"),
        ("demo.example.org:80", "http://demo.example.org:80"),
    ],
)
def test_the_served_address_becomes_the_links_base(addr, url):
    assert served_base_url(addr) == url


def test_every_printed_link_uses_the_served_address():
    state = DemoState(password="pw", cases=1)
    state.urls.append(("The report", "/p/demo/runs/1/report/"))
    lines = summary_lines(state, "http://127.0.0.1:8765")
    links = [word for line in lines for word in line.split() if word.startswith("http")]
    assert links and all(link.startswith("http://127.0.0.1:8765/") for link in links)
    assert not any("8000" in line for line in lines)
