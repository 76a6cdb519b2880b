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
        assert tok.decode(p + c) == full
        assert "print('hi')" in tok.decode(c) and tok.eos_token in tok.decode(c)  # it learns to stop
