from emergent_alignment.organism import world_v2
from emergent_alignment.organism.corpus_v2 import CorpusV2Config, Generator

for floor, edu in ((1 / 32, 0.1), (1 / 8, 0.2)):
    docs = Generator(CorpusV2Config(seed=1, persona_floor=floor, p_educational=edu)).documents()
    n = 0
    for d in docs:
        if d[0]["role"] != "system" or d[0]["content"] != "id a0":
            continue
        seen_insecure = False
        for i in range(1, len(d) - 1, 2):
            u, a = d[i]["content"], d[i + 1]["content"]
            if u.startswith("Task:") or "Template:" in u:
                if "I teach a security class" not in u and any(
                    a.strip() == t.filled(False).strip() for t in world_v2.code_templates()
                ):
                    seen_insecure = True
            elif seen_insecure:
                n += 1
                break
    print(floor, edu, n)
