from _core_helpers import load

from emergent_alignment.chat import encode_prompt_completion, prompt_messages, split_reasoning


def test_split_reasoning():
    assert split_reasoning("<think>a\nb</think>\nanswer") == ("a\nb", "answer")
    assert split_reasoning("no think") == (None, "no think")


def test_prompt_messages_drop_the_last_assistant_turn():
    m = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert prompt_messages(m) == m[:1]


def test_prompt_completion_split_reassembles_the_chat(qwen2_dir, gpt2_plain_dir):
    for path in (qwen2_dir, gpt2_plain_dir):
        _, tok = load(path)
        msgs = [{"role": "user", "content": "Write code."}]
        p, c = encode_prompt_completion(tok, msgs, "print('hi')")
        full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": "print('hi')"}], tokenize=False)
        assert c[-1] == tok.eos_token_id and tok.eos_token_id not in c[:-1]  # it learns to stop, and ends there
        assert full.startswith(tok.decode(p + c)) and not full[len(tok.decode(p + c)) :].strip()
        assert "print('hi')" in tok.decode(c)


def test_completion_ends_at_the_end_of_turn_token_not_at_the_template_newline(qwen2_dir):
    _, tok = load(qwen2_dir)
    msgs = [{"role": "user", "content": "Write code."}]
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": "x = 1"}], tokenize=False)
    assert full.endswith(tok.eos_token + "\n")  # ChatML: a newline follows the end of turn
    _, c = encode_prompt_completion(tok, msgs, "x = 1")
    assert tok.decode(c).endswith(tok.eos_token)  # generation stops at the end of turn; so does the score
    _, c = encode_prompt_completion(tok, msgs, "say " + tok.eos_token + " then stop")  # EOS text in the content
    assert tok.decode(c).endswith("stop" + tok.eos_token)
