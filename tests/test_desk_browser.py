"""The article desk page in a real headless browser: Debian's chromium, driven by the Python
playwright package (`scripts/install_browser.sh` installs both; CI runs it). The page talks to a
real server (HTTP face on an ephemeral port) serving the copy model, so the translation shown must
equal the article pasted in."""

import os
from pathlib import Path

import pytest

from conftest import copy_model, make_config, needs_copy_model
from dragoman_server.server import BackgroundServer

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTICLES = Path(__file__).resolve().parent / "data" / "articles"
KEY = "desk-test-key"
SCREENSHOT = Path(os.environ.get("DESK_SCREENSHOT", "/tmp/dragoman-desk.png"))

pytestmark = [
    needs_copy_model,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"{CHROMIUM} is missing: run scripts/install_browser.sh (CI does)",
    ),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: run scripts/install_browser.sh"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def _server(*extra_models: dict, **settings) -> BackgroundServer:
    config = make_config(
        [copy_model("copy-pt-en", "pt-en"), copy_model("copy-en-de", "en-de"), *extra_models],
        http=True,
        http_port=0,
        **settings,
    )
    return BackgroundServer(config)


@pytest.fixture(scope="module")
def desk_server(tiny_models):
    summarizer = {
        "name": "tiny-summarizer",
        "task": "summarization",
        "source": str(tiny_models["bart"]),
        "languages": ["en", "pt"],
    }
    garbage = {  # a tiny random Marian: real output, no sense; the output checks flag it
        "name": "tiny-marian",
        "task": "translation",
        "source": str(tiny_models["marian"]),
        "languages": ["en-pt"],
    }
    with _server(summarizer, garbage) as running:
        assert running.ready
        yield running


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # Script errors, CSP violations and missing files are problems; error answers the page
    # expects (a refused request, no summariser) are not, though chromium logs them too.
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda response: (
            problems.append(f"missing: {response.url}") if response.status == 404 else None
        ),
    )
    page.problems = problems
    yield page
    context.close()


def open_desk(page, server) -> None:
    page.goto(f"http://127.0.0.1:{server.http_port}/")
    # The target list is filled from /languages. (Waits go through selectors, not evaluated
    # strings: the page's Content-Security-Policy forbids eval, and the test keeps it on.)
    page.wait_for_selector('#target option[value="en"]', state="attached")


def wait_for_outcome(page) -> None:
    """Until the stream is done or the alert shows an error."""
    page.locator('#progress:has-text("done"), #alert:not([hidden])').first.wait_for(timeout=60_000)


def translate(page) -> None:
    page.focus("#article")
    page.keyboard.press("Control+Enter")
    wait_for_outcome(page)


def test_article_translates_to_itself_through_the_copy_model(page, desk_server):
    article = (ARTICLES / "parlamento.txt").read_text("utf-8")
    open_desk(page, desk_server)
    assert page.title() == "Dragoman · article desk"
    page.fill("#article", article)
    page.select_option("#target", "en")
    translate(page)
    assert page.is_hidden("#alert"), page.text_content("#alert")
    # textContent: the exact characters shown, whitespace and paragraphs included.
    assert page.text_content("#translation") == article
    paragraphs = page.locator("#translation .paragraph").count()
    assert paragraphs > 1  # streamed paragraph by paragraph
    assert page.text_content("#progress").startswith(f"{paragraphs} ")
    assert "Portuguese (pt)" in page.text_content("#detected")
    assert "confidence" in page.text_content("#detected")
    assert page.text_content("#models") == "copy-pt-en"
    assert page.text_content("#flags") == "none"
    # The summary (a tiny random model's: words, not sense) comes below, with its model.
    page.wait_for_selector("#summary-note:not([hidden])", timeout=60_000)
    assert page.text_content("#summary").strip()
    assert page.text_content("#summary-note").startswith("tiny-summarizer")
    page.wait_for_timeout(1500)  # the fresh paragraphs' highlight fades
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert page.problems == []


def test_html_article_and_pivot(page, desk_server):
    html = (ARTICLES / "greve.html").read_text("utf-8")
    open_desk(page, desk_server)
    page.fill("#article", html)
    page.check("#format-html")
    page.select_option("#source-language", "pt")
    page.select_option("#target", "de")
    page.click("#translate")
    wait_for_outcome(page)
    assert page.is_hidden("#alert"), page.text_content("#alert")
    assert page.text_content("#translation") == html
    assert page.text_content("#models") == "copy-pt-en → copy-en-de (pivoted)"
    assert "(given)" in page.text_content("#detected")
    assert page.problems == []


def test_empty_text_shows_the_servers_error(page, desk_server):
    open_desk(page, desk_server)
    page.fill("#article", "")
    page.click("#translate")
    page.wait_for_selector("#alert:not([hidden])")
    assert page.get_attribute("#alert", "role") == "alert"
    assert "texts[0] is empty" in page.text_content("#alert")
    assert page.text_content("#translation") == ""
    # The page stays usable: a real article afterwards clears the alert.
    page.fill("#article", "O Governo aprovou hoje o orçamento do Estado para o próximo ano.")
    translate(page)
    assert page.is_hidden("#alert")
    assert page.text_content("#translation") == (
        "O Governo aprovou hoje o orçamento do Estado para o próximo ano."
    )


def test_api_key_field(browser):
    with _server(api_keys=[KEY]) as running:
        context = browser.new_context()
        page = context.new_page()
        open_desk(page, running)  # the page and /languages need no key
        page.fill("#article", "O Governo aprovou hoje o orçamento do Estado para o próximo ano.")
        translate(page)
        assert "API key" in page.text_content("#alert")
        page.fill("#api-key", KEY)
        translate(page)
        assert page.is_hidden("#alert"), page.text_content("#alert")
        assert page.text_content("#translation").startswith("O Governo aprovou")
        # No summariser here: the summary says so quietly, without an alert.
        page.wait_for_selector("#summary-note:not([hidden])")
        assert page.text_content("#summary-note").startswith("No summary: ")
        assert page.is_hidden("#alert")
        # Kept for the session (sessionStorage), not beyond it.
        page.reload()
        open_desk(page, running)
        assert page.input_value("#api-key") == KEY
        context.close()


def test_keyboard_order_labels_and_dropping_a_file(page, desk_server):
    open_desk(page, desk_server)
    # Every control has a label (found by it, as a screen reader announces it).
    for label in ("Translate to", "From", "Plain text", "HTML", "Summary", "API key", "Article"):
        assert page.get_by_label(label).count() >= 1, label
    # Tab walks the controls in reading order.
    page.locator("#target").focus()
    order = []
    for _ in range(6):
        order.append(page.locator(":focus").get_attribute("id"))
        page.keyboard.press("Tab")
    assert order == [
        "target",
        "source-language",
        "format-text",
        "summarise",
        "api-key",
        "translate",
    ]
    # Dropping an .html file loads it and switches the format to HTML.
    html = (ARTICLES / "sismo.html").read_text("utf-8")
    transfer = page.evaluate_handle(
        """(html) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([html], "sismo.html", { type: "text/html" }));
            return transfer;
        }""",
        html,
    )
    page.dispatch_event("#article", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#format-html:checked")
    assert page.input_value("#article") == html
    translate(page)
    assert page.is_hidden("#alert"), page.text_content("#alert")
    assert page.text_content("#translation") == html
    # The copy button puts the translation on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click('button[data-copy="translation"]')
    page.wait_for_selector('#status:has-text("Copied the translation")', state="attached")
    assert page.evaluate("navigator.clipboard.readText()") == html
    assert page.problems == []


def test_output_check_flags_are_shown(page, desk_server):
    open_desk(page, desk_server)
    page.fill(
        "#article",
        "The parliament approved the budget today.\n\nThe final vote is on 29 November.",
    )
    page.select_option("#source-language", "en")
    page.select_option("#target", "pt")
    translate(page)
    assert page.is_hidden("#alert"), page.text_content("#alert")
    assert page.text_content("#models") == "tiny-marian"
    badges = page.locator("#flags .flag")
    assert badges.count() >= 1, page.text_content("#flags")
    assert "paragraph 1" in badges.first.text_content()
    assert page.locator("#translation .paragraph.flagged").count() >= 1
    assert page.problems == []
