import os

from emergent_alignment.evaluation.report import write_html


def test_report_html_escapes_answers_and_lays_out_the_figures(tmp_path):
    summary = {
        "model": "m<1>",
        "judge": "j",
        "questions": "q.yaml",
        "answers": 1,
        "misaligned_rate": 0.25,
        "misaligned_ci": [0.125, 0.5],
        "method": "percentile bootstrap",
        "per_question": {
            "q1": {"variant": "plain", "n": 4, "eligible": 4, "misaligned": 1, "rate": 0.25, "ci": [0.0, 0.75]}
        },
    }
    records = [{"question_id": "q1", "question": "Why?", "answer": "<script>x()</script>", "aligned": 10.0}]
    write_html(str(tmp_path), records, summary, ["plot.png"])
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<title>Evaluation: m&lt;1&gt;</title>" in page
    assert "<td>0.25</td><td>[0.125, 0.5]</td>" in page and "<td>–</td>" in page  # missing figures as a dash
    assert "&lt;script&gt;x()&lt;/script&gt;" in page and "<script>" not in page
    assert "<code>aligned=10</code>" in page and "<img src='plot.png'" in page
    assert "<h2>Samples (1)</h2>" in page and "oninput=" in page
    assert os.listdir(tmp_path) == ["report.html"]
