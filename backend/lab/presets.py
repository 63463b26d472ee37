"""Preset sentence pairs that expose each model family's blind spots.

Every pair here is the project's own writing (no sentence is taken from STS-B or any other public data
set). Each preset targets one weakness:

* averaged word vectors ignore word order and barely register a single "not";
* raw BERT pooling (mean or [CLS]) mostly measures topic and surface overlap, so almost everything scores high;
* ESIM reads both sentences together but is only as good as the language and domain it was trained on;
* Sentence-BERT handles paraphrase well but still tends to rate same-topic opposites as similar.

The Chinese presets (named ``中文: ...``, with a Chinese description too) repeat the negation, word-order and
paraphrase traps in Chinese and add Chinese ones: the same characters in another order or sense, traditional
against simplified script, full-width against half-width forms, and product names written in English on one
side and in Chinese on the other.

The dashboard shows the presets in the order of :data:`PRESETS`; the first one is the default. Every preset
also has a Chinese name (``name_zh``) for the Chinese interface; links keep the English ``name``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Preset:
    """A named group of sentence pairs designed to trip up one model family.

    Attributes:
        name: the label shown in the dashboard (also the key in :data:`PRESETS`).
        description: one sentence naming the family the preset is designed to trip up, and why.
        pairs: ``(sentence_a, sentence_b)`` tuples, in display order.
        description_zh: the description in Chinese, for the Chinese presets; empty where there is none (the
            interface then translates ``description`` through its catalogue).
        name_zh: the name the Chinese interface shows (the URL and :data:`PRESETS` keep ``name``).
    """

    name: str
    description: str
    pairs: tuple[tuple[str, str], ...]
    description_zh: str = ""
    name_zh: str = ""


_PRESET_LIST: tuple[Preset, ...] = (
    Preset(
        name="Negation",
        name_zh="英文：否定",
        description=(
            "Trips up averaged word vectors and raw BERT pooling: a single 'not' or 'nobody' barely moves "
            "an average over many shared words, so opposite statements score as near-duplicates."
        ),
        pairs=(
            ("The film was good.", "The film was not good."),
            ("I love this restaurant.", "I don't love this restaurant at all."),
            ("The package has arrived.", "The package has not arrived yet."),
            ("She is a doctor.", "She is not a doctor."),
            ("Everyone passed the exam.", "Nobody passed the exam."),
        ),
    ),
    Preset(
        name="Word order",
        name_zh="英文：语序",
        description=(
            "Trips up averaged word vectors, which treat a sentence as a bag of words, so swapping who did "
            "what to whom gives an identical vector and a cosine of exactly 1."
        ),
        pairs=(
            ("The dog bit the man.", "The man bit the dog."),
            ("Alice sent Bob a letter.", "Bob sent Alice a letter."),
            ("The teacher praised the student.", "The student praised the teacher."),
            ("She moved from Paris to Berlin.", "She moved from Berlin to Paris."),
            ("Only I drink tea in the morning.", "I drink only tea in the morning."),
        ),
    ),
    Preset(
        name="Paraphrase, no shared words",
        name_zh="英文：同义改写，没有相同的词",
        description=(
            "Trips up scores driven by lexical overlap, above all raw BERT pooling and, to a lesser degree, "
            "averaged word vectors: the meaning is the same but no word is shared, which Sentence-BERT is "
            "trained to see through."
        ),
        pairs=(
            ("A man is playing the acoustic guitar on his porch.", "Someone strums an instrument."),
            ("The meeting was postponed.", "They pushed back the gathering."),
            ("He is extremely tired.", "That guy looks exhausted."),
            ("Buy groceries after work.", "Pick up some food at a shop once your shift ends."),
            ("It's pouring outside.", "Heavy rain is falling."),
        ),
    ),
    Preset(
        name="Same topic, different meaning",
        name_zh="英文：同一话题，意思不同",
        description=(
            "Trips up every embedding model, raw BERT pooling most and Sentence-BERT too: the vectors are "
            "dominated by the shared topic, so requests with opposite intents still land close together."
        ),
        pairs=(
            ("How do I open a bank account?", "How do I close my bank account?"),
            ("How do I turn on notifications?", "How do I turn off notifications?"),
            ("My flight was delayed.", "My flight was cancelled."),
            ("Add more salt to the soup.", "Add less salt to the soup."),
            ("I want to buy a used car.", "I want to sell my used car."),
        ),
    ),
    Preset(
        name="中文: negation (否定)",
        name_zh="中文：否定",
        description=(
            "Trips up averaged word vectors, raw BERT pooling and even Chinese sentence encoders: one 不, 没, "
            "没有 or 未 among many shared characters barely moves the vectors, so a statement and its opposite "
            "score as near-duplicates."
        ),
        description_zh="平均词向量、原始 BERT 池化，甚至中文句向量模型都会中招：一个“不”“没”“未”淹没在大量相同的字里，意思相反的两句话几乎得满分。",
        pairs=(
            ("这件衣服我穿着很合身。", "这件衣服我穿着不合身。"),
            ("我已经收到退款了。", "我还没收到退款。"),
            ("订单已经发货了。", "订单还没有发货。"),
            ("您的申请已通过审核。", "您的申请未通过审核。"),
            ("这家店支持七天无理由退货。", "这家店不支持七天无理由退货。"),
        ),
    ),
    Preset(
        name="中文: word order (语序)",
        name_zh="中文：语序",
        description=(
            "Trips up averaged word vectors: both sentences segment into exactly the same words, so swapping "
            "who did what to whom gives an identical bag of words and a cosine of exactly 1."
        ),
        description_zh="平均词向量会中招：两句话切出来的词完全相同，只是“谁对谁做了什么”对调了，词袋一样，余弦正好是 1。",
        pairs=(
            ("卖家给买家退了款。", "买家给卖家退了款。"),
            ("先付款后发货。", "先发货后付款。"),
            ("我欠他五百块钱。", "他欠我五百块钱。"),
            ("从北京飞上海的航班取消了。", "从上海飞北京的航班取消了。"),
            ("房东把钱转给了中介。", "中介把钱转给了房东。"),
            ("公司起诉了这家银行。", "这家银行起诉了公司。"),
        ),
    ),
    Preset(
        name="中文: same characters, different meaning (同字异义)",
        name_zh="中文：同字异义",
        description=(
            "Trips up models that read characters rather than meaning (raw BERT pooling and our "
            "character-level Chinese ESIM see the same characters in nearly the same places) and word vectors, "
            "which give a homograph such as 东西 one vector for both of its meanings."
        ),
        description_zh="看字不看意思的模型容易中招：原始 BERT 池化和按字读入的中文 ESIM 看到的是几乎同样位置的同样的字（上海/海上、语法/法语）；“东西”这类多义词在词向量里只有一个向量。",
        pairs=(
            ("我在上海工作。", "我在海上工作。"),
            ("语法课在下午三点。", "法语课在下午三点。"),
            ("最近的事故多了。", "最近的故事多了。"),
            ("我马上出发。", "我上马出发。"),
            ("我喜欢的人不是他。", "我不喜欢的人是他。"),
            ("我把东西落在出租车上了。", "这条街是东西走向的。"),
        ),
    ),
    Preset(
        name="中文: synonyms, no shared characters (同义不同字)",
        name_zh="中文：同义不同字",
        description=(
            "Trips up scores driven by surface overlap, such as averaged word vectors and an ESIM trained on "
            "a few thousand pairs: the two questions mean the same but share almost no characters (怎么/如何, "
            "手机/电话), which Sentence-BERT-style encoders trained on paraphrases see through."
        ),
        description_zh="依赖字面重合的模型容易中招，如平均词向量和只用几千对句子训练的 ESIM：两句意思相同，却几乎没有相同的字（怎么/如何、手机/电话），用复述数据训练的句向量模型能看穿这一点。",
        pairs=(
            ("怎么退货？", "如何把买的东西寄回去？"),
            ("我的手机丢了。", "电话不见了，找不到。"),
            ("快递什么时候到？", "包裹哪天能送来？"),
            ("我想取消订单。", "这单我不要了。"),
            ("客服电话是多少？", "人工服务怎么联系？"),
            ("付款失败了。", "钱没付成功。"),
        ),
    ),
    Preset(
        name="中文: traditional vs simplified (繁简)",
        name_zh="中文：繁简",
        description=(
            "Trips up models whose vocabulary was built from simplified Chinese (a word2vec trained on "
            "simplified text, our Chinese ESIM): the same sentence in traditional characters becomes unknown "
            "or rare tokens, though it should score as identical."
        ),
        description_zh="词表只来自简体中文的模型容易中招：同一句话换成繁体字就成了生词或罕见词，本应判为完全相同。",
        pairs=(
            ("我的账户被锁定了，怎么办？", "我的帳戶被鎖定了，怎麼辦？"),
            ("请问这个订单什么时候发货？", "請問這個訂單什麼時候發貨？"),
            ("银行卡绑定失败。", "銀行卡綁定失敗。"),
            ("会员费可以退吗？", "會員費可以退嗎？"),
            ("我想修改收货地址。", "我想修改收貨地址。"),
            ("发票开错了，能重新开吗？", "發票開錯了，能重新開嗎？"),
        ),
    ),
    Preset(
        name="中文: full-width vs half-width (全角半角)",
        name_zh="中文：全角半角",
        description=(
            "Trips up any model fed unnormalised text, whose tokenizer sees ＡＢＣ１２３ and ABC123 as "
            "different tokens; the dashboard NFKC-normalises every input first, so every family sees the same "
            "text on both sides and should give the score it gives identical sentences."
        ),
        description_zh="未做规范化的模型会中招：全角的 ＡＢＣ１２３ 和半角的 ABC123 在分词器眼里是不同的符号；本看板先对所有输入做 NFKC 规范化，两边文本完全相同，每个模型都应给出相同句子的分数。",
        pairs=(
            ("我的订单号是２０２４０５１８０１，帮我查一下！", "我的订单号是2024051801,帮我查一下!"),
            ("ＶＩＰ会员怎么续费？", "VIP会员怎么续费?"),
            ("Ｗｉ－Ｆｉ密码是多少？", "Wi-Fi密码是多少?"),
            ("优惠码ＳＡＶＥ５０用不了。", "优惠码SAVE50用不了。"),
            ("客服电话：４００－８８８－１２３４", "客服电话:400-888-1234"),
            ("ｉＰｈｏｎｅ　１５的屏幕碎了（保修期内）。", "iPhone 15的屏幕碎了(保修期内)。"),
        ),
    ),
    Preset(
        name="中文: mixed Chinese-English (中英混合)",
        name_zh="中文：中英混合",
        description=(
            "Trips up single-language models: an English model sees only the Latin brand names and a "
            "Chinese model treats iPhone or WeChat as unknown tokens, so the product that carries the "
            "meaning is lost when one side writes it in English and the other in Chinese."
        ),
        description_zh="单语模型容易中招：英文模型只认得拉丁字母的品牌名，中文模型把 iPhone、WeChat 当生词，一边写英文一边写中文时，承载意思的产品名就丢了。",
        pairs=(
            ("iPhone 15怎么退货？", "苹果15手机怎样办理退货？"),
            ("微信支付怎么绑定银行卡？", "WeChat Pay如何绑卡？"),
            ("App登录不上去。", "应用程序无法登录。"),
            ("VIP会员可以免运费吗？", "贵宾会员包邮吗？"),
            ("我的AirPods左耳没声音了。", "苹果无线耳机左边那只不响了。"),
            ("用Alipay付款失败了。", "支付宝付不了钱。"),
        ),
    ),
    Preset(
        name="Mixed & edge cases",
        name_zh="中英混合与边界情况",
        description=(
            "Trips up monolingual models on a cross-language pair, length-sensitive pooling on a very long "
            "sentence against a short one, and word-vector lookups on emoji and typos that have no vector."
        ),
        pairs=(
            ("The weather is lovely today.", "今天天气很好。"),
            (
                "After months of planning, saving every spare coin and booking the cheapest tickets we could "
                "find, we finally reached the coast, only to learn that every ferry to the island had been "
                "cancelled for the rest of the week because of a storm that nobody had predicted.",
                "Our trip went badly.",
            ),
            ("I love this song 🎵😍", "I love this song."),
            ("🙂", "I am happy."),
            ("Can you recomend a good restarant?", "Can you recommend a good restaurant?"),
        ),
    ),
)

PRESETS: dict[str, Preset] = {preset.name: preset for preset in _PRESET_LIST}
"""All presets by name, in display order (the first is the default)."""


def default_pairs() -> list[tuple[str, str]]:
    """The pairs of the first preset, as a new list (safe to modify)."""
    return list(next(iter(PRESETS.values())).pairs)


def as_frame(name: str) -> pd.DataFrame:
    """The pairs of preset ``name`` as a frame with columns ``sentence_a`` and ``sentence_b``.

    Raises:
        KeyError: if there is no preset called ``name`` (the message lists the known names).
    """
    try:
        preset = PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
    return pd.DataFrame(list(preset.pairs), columns=["sentence_a", "sentence_b"])


#: our own same-meaning judgement of each preset pair (1 = same meaning), in preset order. It only lets the Batch
#: page show a metric on its example file; it is not a benchmark.
EXAMPLE_LABELS = {
    "Negation": (0, 0, 0, 0, 0),
    "Word order": (0, 0, 0, 0, 0),
    "Paraphrase, no shared words": (1, 1, 1, 1, 1),
    "Same topic, different meaning": (0, 0, 0, 0, 0),
    "中文: negation (否定)": (0, 0, 0, 0, 0),
    "中文: word order (语序)": (0, 0, 0, 0, 0, 0),
    "中文: same characters, different meaning (同字异义)": (0, 0, 0, 0, 0, 0),
    "中文: synonyms, no shared characters (同义不同字)": (1, 1, 1, 1, 1, 1),
    "中文: traditional vs simplified (繁简)": (1, 1, 1, 1, 1, 1),
    "中文: full-width vs half-width (全角半角)": (1, 1, 1, 1, 1, 1),
    "中文: mixed Chinese-English (中英混合)": (1, 1, 1, 1, 1, 1),
    "Mixed & edge cases": (1, 1, 1, 1, 1),
}


def example_pairs_frame() -> pd.DataFrame:
    """Every preset pair as a batch file: ``sentence1, sentence2, label, preset`` (label: our judgement)."""
    rows = []
    for name, preset in PRESETS.items():
        labels = EXAMPLE_LABELS.get(name, (None,) * len(preset.pairs))
        for (a, b), y in zip(preset.pairs, labels, strict=False):
            rows.append({"sentence1": a, "sentence2": b, "label": y, "preset": name})
    return pd.DataFrame(rows)
