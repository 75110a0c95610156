"""Words and phrase templates of the world's instructions in English, Hindi (Devanagari) and Telugu.

Hindi phrases are built so that every object phrase is followed by a postposition (के पास, की ओर, ...),
which takes the oblique case: so each noun is stored in its oblique singular form with its gender, and
colours carry a masculine and a feminine oblique form (लाल is invariant; नीला -> नीले / नीली). Telugu
adjectives are invariant and its case endings are written out per room ("into": -లోకి, "in": -లో).
These are template sentences for a synthetic benchmark, not reviewed by native speakers.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------------------------ Hindi
HI_ROOMS: dict[str, str] = {  # oblique (before में)
    "kitchen": "रसोई", "bedroom": "शयनकक्ष", "bathroom": "स्नानघर", "living room": "बैठक",
    "hallway": "गलियारे", "office": "दफ़्तर", "dining room": "भोजनकक्ष",
}
HI_OBJECTS: dict[str, tuple[str, str]] = {  # kind -> (oblique singular, gender m/f)
    "fridge": ("फ़्रिज", "m"), "stove": ("चूल्हे", "m"), "sink": ("सिंक", "m"), "table": ("मेज़", "f"),
    "cabinet": ("कैबिनेट", "m"), "clock": ("घड़ी", "f"), "bed": ("पलंग", "m"), "wardrobe": ("अलमारी", "f"),
    "lamp": ("लैंप", "m"), "dresser": ("ड्रेसर", "m"), "mirror": ("आईने", "m"), "plant": ("पौधे", "m"),
    "bathtub": ("बाथटब", "m"), "toilet": ("टॉयलेट", "m"), "towel rack": ("तौलिया स्टैंड", "m"),
    "sofa": ("सोफ़े", "m"), "tv": ("टीवी", "m"), "armchair": ("आरामकुर्सी", "f"), "fireplace": ("अंगीठी", "f"),
    "piano": ("पियानो", "m"), "painting": ("तस्वीर", "f"), "rug": ("कालीन", "m"), "shelf": ("शेल्फ़", "f"),
    "coat rack": ("कोट स्टैंड", "m"), "vase": ("फूलदान", "m"), "desk": ("डेस्क", "f"), "chair": ("कुर्सी", "f"),
    "bookshelf": ("किताबों की अलमारी", "f"), "computer": ("कंप्यूटर", "m"),
    "dining table": ("खाने की मेज़", "f"), "chandelier": ("झूमर", "m"), "stairs": ("सीढ़ियों", "f"),
}
HI_COLOURS: dict[str, tuple[str, str]] = {  # colour -> (masculine oblique, feminine)
    "red": ("लाल", "लाल"), "blue": ("नीले", "नीली"), "green": ("हरे", "हरी"), "white": ("सफ़ेद", "सफ़ेद"),
    "black": ("काले", "काली"), "brown": ("भूरे", "भूरी"), "yellow": ("पीले", "पीली"),
    "grey": ("स्लेटी", "स्लेटी"), "orange": ("नारंगी", "नारंगी"), "purple": ("बैंगनी", "बैंगनी"),
}
HI = {
    "turn": {"left": ["बाएँ मुड़िए।", "बाईं ओर मुड़ जाइए।"], "right": ["दाएँ मुड़िए।", "दाईं ओर मुड़ जाइए।"],
             "around": ["पीछे मुड़िए।", "पीछे की ओर घूम जाइए।"], "forward": ["सीधे चलिए।", "आगे बढ़िए।"]},
    "start": ["आप {room} में खड़े हैं।", "शुरुआत में आप {room} में हैं।"],
    "pass": ["{obj} के पास से गुज़रिए।", "{obj} के बगल से आगे चलिए।"],
    "pass_side": ["{obj} को अपनी {side} ओर छोड़ते हुए आगे बढ़िए।"],
    "enter": ["{room} में जाइए।", "{room} में प्रवेश कीजिए।", "दरवाज़े से होकर {room} में चलिए।"],
    "up": ["सीढ़ियाँ चढ़कर ऊपर जाइए।"], "down": ["सीढ़ियों से नीचे उतरिए।"],
    "forward": ["थोड़ा और आगे चलिए।", "सीधे चलते रहिए।"],
    "stop": ["{obj} के पास रुक जाइए।", "{obj} के सामने रुकिए, यहीं आपकी मंज़िल है।"],
    "sides": {"left": "बाईं", "right": "दाईं"},
}

# ----------------------------------------------------------------------------------------------- Telugu
TE_ROOMS: dict[str, tuple[str, str]] = {  # room -> (in, into)
    "kitchen": ("వంటగదిలో", "వంటగదిలోకి"), "bedroom": ("పడకగదిలో", "పడకగదిలోకి"),
    "bathroom": ("స్నానాల గదిలో", "స్నానాల గదిలోకి"), "living room": ("హాలులో", "హాలులోకి"),
    "hallway": ("నడవాలో", "నడవాలోకి"), "office": ("ఆఫీసు గదిలో", "ఆఫీసు గదిలోకి"),
    "dining room": ("భోజనాల గదిలో", "భోజనాల గదిలోకి"),
}
TE_OBJECTS: dict[str, str] = {
    "fridge": "ఫ్రిజ్", "stove": "పొయ్యి", "sink": "సింక్", "table": "బల్ల", "cabinet": "క్యాబినెట్",
    "clock": "గడియారం", "bed": "మంచం", "wardrobe": "బీరువా", "lamp": "దీపం", "dresser": "డ్రెస్సర్",
    "mirror": "అద్దం", "plant": "మొక్క", "bathtub": "బాత్‌టబ్", "toilet": "టాయిలెట్", "towel rack": "తువ్వాళ్ల స్టాండ్",
    "sofa": "సోఫా", "tv": "టీవీ", "armchair": "చేతుల కుర్చీ", "fireplace": "చలిమంట గూడు", "piano": "పియానో",
    "painting": "చిత్రపటం", "rug": "తివాచీ", "shelf": "అర", "coat rack": "కోటు స్టాండ్", "vase": "పూలకుండీ",
    "desk": "డెస్క్", "chair": "కుర్చీ", "bookshelf": "పుస్తకాల అల్మారా", "computer": "కంప్యూటర్",
    "dining table": "భోజనం బల్ల", "chandelier": "షాండ్లియర్", "stairs": "మెట్లు",
}
TE_COLOURS: dict[str, str] = {
    "red": "ఎర్రని", "blue": "నీలి", "green": "ఆకుపచ్చ", "white": "తెల్లని", "black": "నల్లని",
    "brown": "గోధుమ రంగు", "yellow": "పసుపు", "grey": "బూడిద రంగు", "orange": "నారింజ రంగు", "purple": "ఊదా రంగు",
}
TE = {
    "turn": {"left": ["ఎడమ వైపుకు తిరగండి.", "ఎడమకు తిరగండి."], "right": ["కుడి వైపుకు తిరగండి.", "కుడికి తిరగండి."],
             "around": ["వెనక్కి తిరగండి.", "పూర్తిగా వెనక్కి తిరగండి."],
             "forward": ["నేరుగా ముందుకు నడవండి.", "ముందుకు వెళ్ళండి."]},
    "start": ["మీరు {room} నిలబడి ఉన్నారు.", "మొదట మీరు {room} ఉన్నారు."],
    "pass": ["{obj} దాటి ముందుకు వెళ్ళండి.", "{obj} పక్క నుండి నడవండి."],
    "pass_side": ["{obj} మీ {side} వైపు ఉండేలా ముందుకు నడవండి."],
    "enter": ["{room} వెళ్ళండి.", "{room} ప్రవేశించండి.", "ద్వారం గుండా {room} నడవండి."],
    "up": ["మెట్లు ఎక్కి పైకి వెళ్ళండి."], "down": ["మెట్లు దిగి కిందకు వెళ్ళండి."],
    "forward": ["ఇంకొంచెం ముందుకు నడవండి.", "నేరుగా నడుస్తూ ఉండండి."],
    "stop": ["{obj} దగ్గర ఆగండి.", "{obj} ముందు ఆగండి, అదే మీ గమ్యం."],
    "sides": {"left": "ఎడమ", "right": "కుడి"},
}

# ---------------------------------------------------------------------------------------------- English
EN_R2R = {
    "turn": {"left": ["turn left", "go left", "make a left"], "right": ["turn right", "go right", "make a right"],
             "around": ["turn around", "turn back"], "forward": ["walk forward", "go straight ahead", "head forward"]},
    "pass": ["walk past the {obj}", "go past the {obj}", "pass the {obj}", "walk by the {obj}"],
    "toward": ["head towards the {obj}", "walk towards the {obj}", "go to the {obj}"],
    "enter": ["enter the {room}", "walk into the {room}", "go into the {room}", "continue into the {room}"],
    "pass_enter": ["walk past the {obj} into the {room}", "go past the {obj} and into the {room}"],
    "up": ["go up the stairs", "climb the stairs", "walk up the staircase"],
    "down": ["go down the stairs", "walk down the staircase", "take the stairs down"],
    "forward": ["continue forward", "keep walking straight", "walk a bit further"],
    "stop": ["Stop next to the {obj}.", "Wait by the {obj}.", "Stop in front of the {obj}.",
             "Stop when you reach the {obj}."],
    "stop_room": ["Stop in the {room} next to the {obj}.", "Wait in the {room} by the {obj}."],
    "joins": [" and ", ", then ", ". Then "],
}
EN_RXR = {
    "en-US": {
        "start": ["You are starting in the {room}.", "Okay, you're in the {room}."],
        "facing": ["You are facing the {obj}.", "Right in front of you there is the {obj}."],
        "turn": {"left": ["Turn to your left.", "Turn left."], "right": ["Turn to your right.", "Turn right."],
                 "around": ["Turn all the way around.", "Turn around so the wall is behind you."],
                 "forward": ["Walk straight ahead.", "Go forward."]},
        "pass_side": ["Walk forward, passing the {obj} on your {side}.", "Keep going with the {obj} on your {side}."],
        "pass": ["Walk towards the {obj}.", "Head over to the {obj}."],
        "enter": ["Go through the doorway into the {room}.", "Step into the {room}."],
        "up": ["Take the stairs up to the next floor."], "down": ["Take the stairs down to the floor below."],
        "forward": ["Keep walking straight.", "Continue a few steps forward."],
        "stop": ["Stop right next to the {obj} in the {room}. That's your destination.",
                 "Stand in front of the {obj} and you're done."],
    },
    "en-IN": {
        "start": ["Now you are in the {room}.", "You are standing in the {room}."],
        "facing": ["The {obj} is in front of you.", "You can see the {obj} in front."],
        "turn": {"left": ["Take left.", "Turn towards your left side."],
                 "right": ["Take right.", "Turn towards your right side."],
                 "around": ["Turn back.", "Take a U-turn."], "forward": ["Go straight.", "Move forward."]},
        "pass_side": ["Move forward, the {obj} will be on your {side} side.", "Go straight crossing the {obj} on your {side}."],
        "pass": ["Move towards the {obj}.", "Go near the {obj}."],
        "enter": ["Enter into the {room}.", "Go inside the {room} through the door."],
        "up": ["Climb the stairs and go to the upper floor."], "down": ["Get down the stairs to the lower floor."],
        "forward": ["Go straight little bit.", "Move a few steps ahead."],
        "stop": ["Stop near the {obj}, you have reached.", "Stand beside the {obj} in the {room}, that is the end point."],
    },
}
