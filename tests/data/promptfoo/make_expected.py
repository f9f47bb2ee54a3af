"""Writes expected.json beside it from the hand-checked table below (the reasons stay readable here).

Run: python tests/data/promptfoo/make_expected.py
"""

import json
from pathlib import Path

CONVENTIONS = {
    "tests_read": "test entries as written, before any expansion (the lead's convention, 2026-12-06): each inline test, each row of a referenced CSV/JSONL/YAML/JSON tests file, a scenario's tests once (not once per scenario config), a test with array vars once",
    "cases_made": "evalhub cases actually made, as stored: every test expanded (scenario config x tests, one per combination of array vars, one per file of a var glob) x prompts (each prompt a slice), less the rows the import skipped (exact duplicates, invalid rows; with only_valid_rows). The CLI, the API and the web all show this one number",
    "asserts_mapped": "assertions stored as checks evalhub runs itself, summed over the cases made (defaultTest asserts count in every case)",
    "asserts_pending": "assertions kept as pending checks for a later judge (llm-rubric, javascript, python, similar, factuality, cost, latency, an assert with a JavaScript transform ...), summed over the cases made",
    "dropped": "fields evalhub has no home for, under the path the import lists them by ('[]' for any entry of a list), each counted once per place it occurs in the config and its files (a list such as providers or derivedMetrics counts once, not once per entry; a field repeated in each of 30 tests counts 30). The test requires the fidelity summary's dropped map to equal this exactly (corrected 2026-12-06: it used to require only that each listed field appear, which hid the config's own `description` and defaultTest.options from the hand check)",
    "refusal": "configs evalhub must refuse: the error must contain every string in refusal_mentions (or one of refusal_any_of), and nothing is stored",
    "semantics": "promptfoo docs: configuration/guide, test-cases, scenarios, datasets (CSV __expected/__metadata/__description/__threshold), expected-outputs (deterministic vs model-graded), red-team configuration",
}

E: dict[str, dict[str, object]] = {}


def ok(
    name: str,
    *,
    tests: int,
    cases: int,
    mapped: int,
    pending: int,
    dropped: dict[str, int],
    reason: str,
    **extra: object,
) -> None:
    E[name] = {
        "tests_read": tests,
        "cases_made": cases,
        "asserts_mapped": mapped,
        "asserts_pending": pending,
        "dropped": dropped,
        "reason": reason,
        **extra,
    }


def refused(
    name: str,
    *,
    reason: str,
    mentions: tuple[str, ...] | list[str] = (),
    any_of: tuple[str, ...] | list[str] = (),
) -> None:
    E[name] = {"refusal_mentions": list(mentions), "refusal_any_of": list(any_of), "reason": reason}


P1 = {"providers": 1}
P1D = {"providers": 1, "description": 1}  # the eval's own description: a suite has no home for it

ok(
    "amazon-bedrock",
    tests=45,
    cases=74,
    mapped=0,
    pending=2,
    dropped=P1D,
    reason="45 inline tests x 2 prompts (prompts.txt split by '---'); 8 questions are written twice word for word (the second 'David Lee Roth' is spelled 'David LeRoth', so that one differs): 8 x 2 = 16 exact duplicates, reported, and skipped with only_valid_rows: 37 x 2 = 74 cases (cases_made counts the cases stored, after the skipped duplicates). The first test's 'similar' needs embeddings (defaultTest.options.provider.embedding): pending in both prompts, the provider kept with it (grader options go with pending checks since 2026-12-06).",
    options={"only_valid_rows": True},
    duplicates=16,
)
ok(
    "assistant-cli",
    tests=10,
    cases=20,
    mapped=0,
    pending=0,
    dropped=P1,
    reason="tests.csv: 10 rows (name, question), no asserts; prompts.txt holds 2 prompts split by '---': 10 x 2 = 20 cases.",
)
ok(
    "cerebras",
    tests=3,
    cases=3,
    mapped=3,
    pending=0,
    dropped={"providers": 1, "description": 1, "outputs": 1},
    reason="3 inline tests, 1 prompt file; contains-any (a list of literals) is a deterministic check (a regex alternation of the escaped values): 3 mapped. 'outputs' (CSV output) has no home.",
)
ok(
    "claude-thinking",
    tests=2,
    cases=2,
    mapped=0,
    pending=2,
    dropped=P1D,
    reason="2 inline tests (block scalars whose lines end in a space), prompt '{{question}}'; llm-rubric pending in each.",
)
ok(
    "config-csv-metadata",
    tests=3,
    cases=3,
    mapped=3,
    pending=3,
    dropped=P1D,
    reason="tests.csv: 3 rows; __expected1 'contains: ...' mapped, __expected2 llm-rubric pending (its {{topic}} rendered); __metadata:category and __metadata:tags[] (escaped comma kept) become metadata; __config:__expectedN:threshold sets the assert thresholds.",
)
ok(
    "config-multiple-translations",
    tests=1,
    cases=50,
    mapped=0,
    pending=50,
    dropped=P1D,
    reason="One test entry (tests_read 1, counted as written) whose vars are arrays (5 languages x 5 inputs): promptfoo runs every combination, 25 tests; prompts.txt holds 2 prompts: 50 cases, each with the llm-rubric (rendered with its own language/input) pending. Was tests 25 before the lead fixed the convention (tests_read counts entries before expansion).",
)
ok(
    "config-multiple-translations-scenarios",
    tests=3,
    cases=18,
    mapped=0,
    pending=18,
    dropped=P1D,
    reason="One scenario with 3 tests written (tests_read 3, counted as written; was 9 before the lead fixed the convention) and 3 config var sets: 3 x 3 = 9 tests; 2 prompts: 18 cases; 'similar' needs embeddings from a provider: pending, its value rendered ({{expectedHelloWorld}} -> 'Hola mundo'). The file is promptfooconfig-scenarios.yaml renamed.",
)
ok(
    "cyberseceval",
    tests=5,
    cases=5,
    mapped=0,
    pending=5,
    dropped=P1D,
    reason="tests: file://prompt_injection.json (a JSON list of tests, trimmed to 5); 1 chat prompt (prompt.json: system {{test_case_prompt}}, user {{user_input}}) labelled in the config; defaultTest llm-rubric '{{judge_question}}. If yes, fail.' rendered per test and pending: 5. injection_variant, injection_type, risk_category and speaking_language are vars no prompt uses: kept (slices).",
)
refused(
    "config-multi-turn",
    reason="The chat prompt loops over promptfoo's _conversation: each turn's input holds the model's earlier outputs in the same conversationId thread, which exist only once a provider has run. evalhub cannot build these inputs at import (rendering with an empty conversation would silently turn 'Where does he live?' into a question without its context), so the refusal must name _conversation.",
    mentions=["_conversation"],
)
refused(
    "config-prompts-per-model",
    reason="prompts: file://prompt2.txt is not in promptfoo's repository (nor in the bundle): a missing referenced file, named with the config that refers to it.",
    mentions=["prompt2.txt"],
)
refused(
    "config-separate-test-configs",
    reason="tests: file://tests/tests2.yaml, vars file://vars/var_content_type.yaml and assert file://asserts/assert.js are not in promptfoo's repository (nor the bundle): a missing referenced file must be named.",
    any_of=["tests/tests2.yaml", "vars/var_content_type.yaml", "asserts/assert.js"],
)
ok(
    "csv-metadata",
    tests=3,
    cases=3,
    mapped=3,
    pending=3,
    dropped={"providers": 1},
    reason="tests.csv: 3 rows; __expected1 contains mapped, __expected2 llm-rubric pending; __metadata:category and __metadata:tags[] kept as metadata.",
)
ok(
    "csv-prompts",
    tests=3,
    cases=15,
    mapped=0,
    pending=0,
    dropped=P1D,
    reason="prompts.csv: 5 prompts (prompt,label columns; one is a chat message list) x 3 inline tests = 15 cases; no asserts. promptfoo reads a prompts CSV one prompt per row (src/prompts/processors/csv.ts: the prompt column, label optional), each row's label its slice.",
)
ok(
    "custom-grading-prompt",
    tests=1,
    cases=1,
    mapped=0,
    pending=1,
    dropped=P1,
    reason="1 test, 1 prompt; llm-rubric with no value: its rubric is defaultTest.options.rubricPrompt, a grader prompt: pending, with the rubric prompt kept in the pending check for the judge.",
)
ok(
    "eval-customer-support-rubric",
    tests=8,
    cases=8,
    mapped=0,
    pending=40,
    dropped=P1D,
    reason="tests.csv: 8 rows with __description, __metadata:severity and __threshold; prompt.txt is '{{reply}}' (1 prompt); defaultTest has 5 llm-rubric asserts (metric, threshold, vars in the rubric): 8 x 5 = 40 pending. defaultTest.options.provider is the grader: kept with each pending check.",
)
ok(
    "eval-self-grading",
    tests=2,
    cases=4,
    mapped=0,
    pending=8,
    dropped=P1D,
    reason="2 inline tests x 2 prompts (prompts.txt split by '---') = 4 cases; defaultTest adds llm-rubric and javascript to each: 8 pending.",
)
ok(
    "eval-summarization",
    tests=1,
    cases=1,
    mapped=2,
    pending=1,
    dropped=P1D,
    reason="vars.article: file://articles/* loads each matching file as a test (only articles/3.txt is kept here): 1 test, 1 prompt. not-starts-with (a negative-lookahead regex) and not-contains are deterministic: 2 mapped; javascript pending.",
)
ok(
    "f-score",
    tests=5,
    cases=5,
    mapped=5,
    pending=25,
    dropped={"providers": 1, "description": 1, "derivedMetrics": 1, "prompts[].config": 1},
    reason="imdb_eval_sample.csv trimmed to 5 rows; 1 prompt given as {label, raw, config}; defaultTest: is-json mapped, 5 javascript (metric, weight 0) pending: 5 mapped, 25 pending. derivedMetrics (one list of 4 formulas: counted once, as providers is) and the prompt's provider config (response_format) have no home, nor does the eval's description.",
)
ok(
    "getting-started",
    tests=2,
    cases=4,
    mapped=4,
    pending=0,
    dropped=P1D,
    reason="2 inline tests x 2 prompts = 4 cases; contains 'Bonjour le monde' and icontains 'Dónde está la biblioteca': 1 mapped per case.",
)
refused(
    "google-sheets",
    reason="tests: is a Google Sheets URL: the tests are only remote, which evalhub does not fetch; the refusal names the URL.",
    mentions=["docs.google.com/spreadsheets"],
)
ok(
    "gpt-3.5-vs-4",
    tests=15,
    cases=15,
    mapped=2,
    pending=32,
    dropped=P1,
    reason="15 inline tests, 1 prompt. defaultTest cost and latency need the provider's run: pending in all 15 cases (30). Test 1: contains mapped + llm-rubric pending; test 2: llm-rubric pending; test 3: contains mapped: 2 mapped, 32 pending.",
)
refused(
    "huggingface-dataset",
    reason="tests: hf://datasets/PKU-Alignment/BeaverTails-Evaluation is a remote Hugging Face dataset: the refusal names it.",
    mentions=["hf://datasets/PKU-Alignment/BeaverTails-Evaluation"],
)
ok(
    "json-output",
    tests=2,
    cases=2,
    mapped=1,
    pending=4,
    dropped=P1D,
    reason="2 tests, 1 prompt. Test 1: is-json mapped, javascript pending. Test 2 sets options.transform (JavaScript: JSON.parse(output)), which promptfoo applies before each of its asserts; evalhub cannot run JavaScript, so all three stay pending with the transform: is-json with its schema, javascript, and contains-any (with its own transform output.countries). 1 mapped, 4 pending.",
)
ok(
    "jsonl-test-cases",
    tests=2,
    cases=2,
    mapped=2,
    pending=0,
    dropped=P1D,
    reason="cases.jsonl: 2 lines (no final newline), 1 prompt; equals is deterministic: 2 mapped.",
)
ok(
    "llama-gpt-comparison",
    tests=8,
    cases=8,
    mapped=0,
    pending=4,
    dropped=P1D,
    reason="8 inline tests, 1 chat prompt from prompts/chat_prompt.json (system + user {{message}}); 4 llm-rubric pending.",
)
ok(
    "mistral-llama-comparison",
    tests=8,
    cases=16,
    mapped=0,
    pending=8,
    dropped=P1,
    reason="prompts as a map of file path -> label (2 prompt files, no file:// prefix); evalhub has no providers, so both prompts apply: 8 tests x 2 = 16 cases; 4 llm-rubric x 2 = 8 pending.",
)
ok(
    "mmlu",
    tests=25,
    cases=25,
    mapped=25,
    pending=0,
    dropped=P1,
    reason="mmlu_data.csv: 25 rows, 1 prompt; defaultTest equals '{{answer}}' rendered per row (e.g. '2'): 25 mapped.",
)
refused(
    "multiple-translations-scenarios",
    reason="prompts: file://prompts.txt is not in promptfoo's repository for this example (nor the bundle): a missing referenced file.",
    mentions=["prompts.txt"],
)
ok(
    "redteam-deepseek",
    tests=35,
    cases=25,
    mapped=25,
    pending=0,
    dropped={"providers": 1, "description": 1, "redteam": 1, "tests[].provider": 30, "metadata": 1},
    reason="redteam.yaml from `promptfoo redteam generate`: 35 tests, vars shared through YAML aliases; no prompts: the target gets the injectVar 'prompt'. The intent plugin's grader maps to must-refuse (1 mapped per case). Strategy (crescendo, goat, jailbreak, mischievous-user) and plugin become slices, so the base test and its strategy variants are distinct cases; but the file holds the jailbreak group three times with identical vars, metadata and asserts (the header lists jailbreak:composite and jailbreak:tree, the tests say jailbreak): 10 exact duplicates, reported, and skipped with only_valid_rows: 25 cases.",
    options={"only_valid_rows": True},
    duplicates=10,
    config="redteam.yaml",
)
refused(
    "nunjucks-custom-filters",
    reason="Both prompts pipe {{body}} through a custom Nunjucks filter, allcaps, defined in JavaScript (./allcaps.js, not copied): evalhub cannot render them, so the refusal must name the filter.",
    mentions=["allcaps"],
)
ok(
    "simple-cli",
    tests=4,
    cases=8,
    mapped=0,
    pending=0,
    dropped=P1D,
    reason="4 inline tests x 2 inline prompts = 8 cases; no asserts.",
)
ok(
    "simple-csv",
    tests=4,
    cases=8,
    mapped=8,
    pending=0,
    dropped=P1D,
    reason="tests.csv: 4 rows (language, body, style_config JSON), __expected icontains:...; prompts.txt holds 2 prompts, the first using promptfoo's `load` filter on style_config: 8 cases, 8 mapped.",
)
ok(
    "simple-test",
    tests=5,
    cases=10,
    mapped=8,
    pending=8,
    dropped={"providers": 1, "outputPath": 1},
    reason="5 inline tests x 2 prompts = 10 cases. Per test: equals; icontains; is-json; javascript + python + similar (pending); llm-rubric (pending) + $ref to assertionTemplates.containsPirateNoise (icontains, mapped). 4 mapped + 4 pending per prompt. 'body: Yes' stays the string Yes (YAML 1.2).",
)

Path(__file__).with_name("expected.json").write_text(
    json.dumps({"conventions": CONVENTIONS, "configs": dict(sorted(E.items()))}, indent=2, ensure_ascii=False)
    + "\n"
)
print(len(E), "configs;", sum("refusal_mentions" in v for v in E.values()), "refusals")
