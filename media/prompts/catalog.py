"""The fixed prompt texts and the composition of numbers, counts, dates and times from cached clips.

Every text here is rendered at start-up; at call time speech is only ever a list of keys of this catalogue
(plus generated tones), so no TTS runs while a call is up.
"""

from __future__ import annotations

import datetime as dt

ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
ORDINALS = ("", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
            "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
            "eighteenth", "nineteenth", "twentieth", "twenty first", "twenty second", "twenty third",
            "twenty fourth", "twenty fifth", "twenty sixth", "twenty seventh", "twenty eighth",
            "twenty ninth", "thirtieth", "thirty first")
MONTHS = ("", "January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

PHRASES: dict[str, str] = {
    "greeting_default_1": "The person at",
    "greeting_default_2": "is not available. Please leave a message after the tone.",
    "mailbox_full": "Sorry, the mailbox is full. Goodbye.",
    "mailbox_unavailable": "Sorry, this mailbox is not available. Goodbye.",
    "message_too_short": "Your message was too short and was not saved.",
    "goodbye": "Goodbye.",
    "you_have": "You have",
    "new_messages": "new messages",
    "new_message": "new message",
    "and": "and",
    "saved_messages": "saved messages",
    "saved_message": "saved message",
    "no_more_new": "There are no more new messages.",
    "no_more_saved": "There are no more saved messages.",
    "message_from": "Message from",
    "unknown_caller": "an unknown caller",
    "received": "received",
    "at": "at",
    "oclock": "o'clock",
    "oh": "oh",
    "am": "A M",
    "pm": "P M",
    "main_menu": ("Main menu. For new messages press 1. For saved messages press 2. To record your greeting "
                  "press 3. To make a call press 4. To hear this menu again press 0."),
    "help_message": ("During a message press pound to skip to the end, 1 to start again, 2 to save, 3 to "
                     "delete, or 6 for the next message."),
    "after_message": ("To repeat press 1. To save press 2. To delete press 3. For the next message press 6. "
                      "For the main menu press star."),
    "message_saved": "Message saved.",
    "message_deleted": "Message deleted.",
    "enter_pin": "Please enter your PIN followed by the pound key.",
    "pin_wrong": "That PIN is not correct.",
    "mailbox_locked": "This mailbox is locked. Goodbye.",
    "record_greeting": "Record your greeting after the tone. Press pound when you are done.",
    "greeting_options": ("To keep this greeting press 1. To record it again press 2. To use the default "
                         "greeting press 3. For the main menu press star."),
    "greeting_saved": "Your greeting has been saved.",
    "greeting_default_restored": "The default greeting will be used.",
    "enter_number": "Enter the number you want to call, then press pound. Press star to cancel.",
    "calling": "Calling",
    "please_wait": "Please wait.",
    "call_not_allowed": "Sorry, that call is not allowed.",
    "call_busy": "Sorry, that number is busy.",
    "call_failed": "Sorry, the call could not be completed.",
    "invalid_choice": "That is not a valid choice.",
    "no_input": "Sorry, I did not hear your choice.",
    "recording_too_short": "The recording was too short.",
    "hundred": "hundred",
    "thousand": "thousand",
    "star": "star",
    "pound": "pound",
}


def all_texts() -> list[str]:
    """Every clip the service needs, for rendering at start-up."""
    texts = list(PHRASES.values())
    texts += list(ONES) + [t for t in TENS if t] + [o for o in ORDINALS if o]
    texts += [m for m in MONTHS if m] + list(WEEKDAYS)
    return texts


def number_words(n: int) -> list[str]:
    """Clip texts for 0 <= n < 1,000,000 ("three hundred", "twenty", "one")."""
    if n < 0 or n >= 1_000_000:
        raise ValueError(f"cannot speak {n}")
    if n < 20:
        return [ONES[n]]
    if n < 100:
        return [TENS[n // 10]] + ([ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [ONES[n // 100], PHRASES["hundred"]] + (number_words(n % 100) if n % 100 else [])
    return number_words(n // 1000) + [PHRASES["thousand"]] + (number_words(n % 1000) if n % 1000 else [])


def digit_words(digits: str) -> list[str]:
    """A phone number spoken digit by digit; ``+`` is not spoken."""
    names = {**{str(i): ONES[i] for i in range(10)}, "*": PHRASES["star"], "#": PHRASES["pound"]}
    return [names[c] for c in digits if c in names]


def count_phrase(n: int, singular_key: str, plural_key: str) -> list[str]:
    return [*number_words(n), PHRASES[singular_key if n == 1 else plural_key]]


def datetime_words(when: dt.datetime) -> list[str]:
    """"Tuesday November twenty fifth at ten oh five A M" (12-hour clock)."""
    hour12 = when.hour % 12 or 12
    words = [WEEKDAYS[when.weekday()], MONTHS[when.month], ORDINALS[when.day], PHRASES["at"],
             *number_words(hour12)]
    if when.minute == 0:
        words.append(PHRASES["oclock"])
    elif when.minute < 10:
        words += [PHRASES["oh"], ONES[when.minute]]
    else:
        words += number_words(when.minute)
    words.append(PHRASES["am"] if when.hour < 12 else PHRASES["pm"])
    return words
