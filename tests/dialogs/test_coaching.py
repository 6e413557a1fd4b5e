import pytest

from dialogs.coaching import is_concrete
from dialogs.settings import PolicySettings

POLICY = PolicySettings()


@pytest.mark.parametrize("text", ["不满意", "商品不好", "商品不好用", "bad", "Bad!!", "垃圾，我要退款", "不行", "refund",
                                  "not good at all", "ok", "   ", "退款退款退款"])
def test_vague_descriptions_are_coached(text):
    assert not is_concrete(text, POLICY)


@pytest.mark.parametrize("text", ["卡密激活失败", "充值到账错误", "不满意，输入卡密提示卡号无效",
                                  "the game says the code is invalid", "activation fails with error 1002",
                                  "话费充值两小时还没到账"])
def test_concrete_descriptions_are_accepted(text):
    assert is_concrete(text, POLICY)


def test_the_threshold_comes_from_policy():
    assert is_concrete("卡密失效", POLICY.model_copy(update={"min_description_weight": 8}))
    assert not is_concrete("卡密失效", POLICY.model_copy(update={"min_description_weight": 9}))
