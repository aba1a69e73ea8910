"""Small made-up labelled opinions for routing tests: a label set unlike the demo taxonomy,
to show the classifier learns whatever labels a CSV gives it."""

import csv
import io
import random

from services.routing.classifier import LabelledText

TOPICS = {
    "供水": ["自来水", "水管漏水", "水压太低", "水质发黄", "水表", "供水管网"],
    "道路": ["路面坑洼", "井盖缺失", "红绿灯故障", "人行道破损", "道路积水", "护栏倒塌"],
    "学校": ["学校食堂", "老师补课", "学生放学", "学位紧张", "校车安全", "课后托管"],
}
FILLER = ["请有关部门尽快处理", "居民反映强烈", "希望早日解决", "已经持续很久", "影响生活"]


def samples(per_label: int, seed: int = 1) -> list[LabelledText]:
    """``per_label`` opinions for each topic, each naming two of its phrases."""
    rng = random.Random(seed)
    rows = []
    for label, phrases in TOPICS.items():
        for i in range(per_label):
            first, second = rng.sample(phrases, 2)
            content = f"{first}问题，{second}，{rng.choice(FILLER)}。编号{i}"
            rows.append(LabelledText(f"{first}的问题", content, label))
    return rows


def to_csv(
    rows: list[LabelledText], header: tuple[str, ...] = ("title", "content", "category")
) -> bytes:
    """The rows as a UTF-8 CSV file."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([r.title, r.content, r.category] for r in rows)
    return out.getvalue().encode()
