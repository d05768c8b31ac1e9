"""Tiny built-in text-classification datasets for demos and tests.

The sentences in this module were written from scratch by the taskspace authors
specifically for demonstrations, examples and unit tests. They are not drawn from
any external corpus, and they are released together with the package under the
taskspace licence.

Each dataset is a tuple of :class:`Example` rows (``text``, ``label``) with the
labels interleaved and balanced:

* ``movie_sentiment`` -- 80 short movie-review sentences, ``negative`` / ``positive``.
* ``product_sentiment`` -- 80 short product and customer-service reviews,
  ``negative`` / ``positive``.
* ``news_topic`` -- 80 invented news headlines, ``sports`` / ``business`` /
  ``science`` / ``world``.
* ``question_type`` -- 60 short questions by expected answer type, ``person`` /
  ``place`` / ``number``.

The datasets are deliberately small: they are meant to make examples run quickly,
not to benchmark models.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "BUILTIN",
    "MOVIE_SENTIMENT",
    "NEWS_TOPIC",
    "PRODUCT_SENTIMENT",
    "QUESTION_TYPE",
    "Example",
    "load",
]


class Example(NamedTuple):
    """One labelled text."""

    text: str
    label: str


# Short movie-review sentences labelled by sentiment.
MOVIE_SENTIMENT: tuple[Example, ...] = (
    Example(
        "The plot wandered aimlessly for two hours and never arrived anywhere worth the trip.",
        "negative",
    ),
    Example(
        "A warm, funny and surprisingly moving film that I would happily watch again tomorrow.",
        "positive",
    ),
    Example(
        "The lead performance is electric, and the final scene left the whole theater cheering.",
        "positive",
    ),
    Example("The dialogue felt stiff and the actors seemed bored reading every single line.", "negative"),
    Example("I checked my watch at least six times during this sluggish, joyless sequel.", "negative"),
    Example(
        "Gorgeous cinematography and a clever script make this one of the best films of the year.",
        "positive",
    ),
    Example("I laughed from the opening credits to the very end; the comic timing is perfect.", "positive"),
    Example("Loud explosions cannot hide the fact that the story has no heart at all.", "negative"),
    Example("The twist was obvious from the first ten minutes, which drained all the tension.", "negative"),
    Example(
        "A thoughtful drama with characters who feel like real people you might actually know.",
        "positive",
    ),
    Example(
        "The soundtrack is stunning and the pacing never lets your attention drift for a moment.",
        "positive",
    ),
    Example("Even the talented cast could not rescue such a muddled and lifeless screenplay.", "negative"),
    Example("The editing was choppy, the jokes fell flat, and the ending made no sense.", "negative"),
    Example("This charming little film quietly won me over with its kindness and wit.", "positive"),
    Example(
        "The director balances humor and sorrow with real skill, and the result is unforgettable.",
        "positive",
    ),
    Example("A tedious, overlong mess that mistakes shouting for emotion.", "negative"),
    Example("I wanted to like it, but the characters were flat and the pacing dragged badly.", "negative"),
    Example(
        "An absolute delight from start to finish, packed with heart and brilliant visual ideas.",
        "positive",
    ),
    Example("Solid performances and a tight, suspenseful plot kept me on the edge of my seat.", "positive"),
    Example("The special effects looked cheap and the villain was more silly than scary.", "negative"),
    Example("Honestly one of the dullest films I have sat through in years.", "negative"),
    Example(
        "The animation is beautiful and the story will charm both children and their parents.",
        "positive",
    ),
    Example(
        "A bold, inventive thriller that rewards careful attention with a truly satisfying payoff.",
        "positive",
    ),
    Example("Nothing happens for the first hour, and the second hour is somehow even slower.", "negative"),
    Example("The romance felt forced and the two leads had zero chemistry together on screen.", "negative"),
    Example("I left the cinema smiling; it is a genuinely uplifting and well crafted story.", "positive"),
    Example("The ensemble cast shines, and every supporting character gets a memorable moment.", "positive"),
    Example(
        "Clumsy writing and awkward direction turn a promising idea into a forgettable evening.",
        "negative",
    ),
    Example(
        "The film is so busy copying older hits that it forgets to have its own personality.",
        "negative",
    ),
    Example("Pleasant enough, with a few lovely scenes and a likable performance from the lead.", "positive"),
    Example("Fresh, sharp and beautifully acted, this comedy deserves a much wider audience.", "positive"),
    Example(
        "A disappointing adaptation that strips away everything readers loved about the novel.",
        "negative",
    ),
    Example("The runtime is bloated and several subplots simply vanish without any explanation.", "negative"),
    Example("It is not perfect, but the heartfelt writing makes it well worth an evening.", "positive"),
    Example("The battle sequences are thrilling, and the quieter moments are just as powerful.", "positive"),
    Example("Bland, predictable and strangely cold, the movie left me feeling nothing at all.", "negative"),
    Example("The humor is mean-spirited and the lazy script relies on tired stereotypes.", "negative"),
    Example(
        "A moving portrait of family life, told with honesty, patience and great tenderness.",
        "positive",
    ),
    Example("The young actress gives a remarkable performance that carries the entire film.", "positive"),
    Example("Poor sound mixing made half of the dialogue impossible to understand.", "negative"),
    Example("It tries to be deep but ends up pretentious, confusing and painfully slow.", "negative"),
    Example("Every frame looks like a painting, and the music lifts each scene beautifully.", "positive"),
    Example("A smart, funny script and terrific chemistry between the leads make this a winner.", "positive"),
    Example("I regret paying full price for this noisy and completely empty blockbuster.", "negative"),
    Example("The horror movie was never frightening, just loud and repetitive.", "negative"),
    Example(
        "This documentary is informative, gripping and surprisingly emotional by the final act.",
        "positive",
    ),
    Example(
        "Clever, tender and wildly entertaining, it is the rare sequel that beats the original.",
        "positive",
    ),
    Example("The sequel throws away everything that made the original film special.", "negative"),
    Example("Wooden acting and a confusing timeline made it hard to care about anyone.", "negative"),
    Example("The mystery unfolds at just the right speed and the solution feels earned.", "positive"),
    Example("A quietly beautiful film that stays with you long after the lights come up.", "positive"),
    Example("The movie feels like a long advertisement with a thin story attached.", "negative"),
    Example("Mediocre at best, with a few decent shots buried in a sea of cliches.", "negative"),
    Example("I was hooked from the first scene and did not want the story to end.", "positive"),
    Example("Wonderful costumes, witty dialogue and a cast clearly having a great time.", "positive"),
    Example("The ending is rushed, as if the writers simply ran out of ideas.", "negative"),
    Example("Too long, too loud and far too pleased with its own cleverness.", "negative"),
    Example("A gentle, good-natured comedy that made my whole family laugh together.", "positive"),
    Example("The tension builds slowly and masterfully toward a truly shocking climax.", "positive"),
    Example("The main character is so unpleasant that I was rooting for the villain.", "negative"),
    Example("A weak script, lazy camera work and a cast that seems to be sleepwalking.", "negative"),
    Example("Easily the most enjoyable film I have seen at the cinema this summer.", "positive"),
    Example("Its warmth and humor won me over despite a slightly slow beginning.", "positive"),
    Example("The film was a chore to sit through and I nearly walked out halfway.", "negative"),
    Example("I found the story confusing and the characters impossible to sympathize with.", "negative"),
    Example("An inspiring sports drama with rousing performances and a big, earned finale.", "positive"),
    Example("The script is sharp and the actors deliver every joke with perfect confidence.", "positive"),
    Example("Not awful, just a flat and forgettable film that offers nothing new.", "negative"),
    Example("The action scenes are so dark and shaky that you cannot follow anything.", "negative"),
    Example("A stylish and clever heist movie that is pure fun from beginning to end.", "positive"),
    Example("The film handles a difficult subject with grace, honesty and real compassion.", "positive"),
    Example("Overacted, overwritten and overlong, this drama is exhausting rather than moving.", "negative"),
    Example("The songs in this musical are instantly forgettable and the dancing is sloppy.", "negative"),
    Example("The songs are catchy, the choreography is dazzling and the story is sweet.", "positive"),
    Example("Decent fun overall, with a strong cast and some genuinely good laughs.", "positive"),
    Example("A promising first act collapses into a silly and incoherent finale.", "negative"),
    Example("The kids in the audience were bored, and honestly so were the adults.", "negative"),
    Example("A breathtaking science fiction adventure full of ideas, wonder and emotion.", "positive"),
    Example("A fine, enjoyable film with a lovely message and a satisfying ending.", "positive"),
    Example("Flat lighting, stilted performances and a story that goes absolutely nowhere.", "negative"),
)

# Short product and customer-service reviews labelled by sentiment.
PRODUCT_SENTIMENT: tuple[Example, ...] = (
    Example(
        "These headphones are comfortable for hours and the noise cancelling works brilliantly on flights.",
        "positive",
    ),
    Example("The phone battery drains to half by lunchtime even with the screen dimmed.", "negative"),
    Example("The stitching on my new boots came apart after only two weeks of light wear.", "negative"),
    Example("Delivery arrived a day early and the blender was packed carefully with no damage.", "positive"),
    Example("This kettle boils water in about two minutes and the handle stays cool.", "positive"),
    Example("The chair wobbles no matter how tight I make the screws, and one leg is shorter.", "negative"),
    Example("Customer service ignored three emails and I am still waiting for my refund.", "negative"),
    Example("The running shoes are light, supportive and comfortable straight out of the box.", "positive"),
    Example(
        "Assembly of the bookshelf was simple, and the instructions were clear and well illustrated.",
        "positive",
    ),
    Example("The charger stopped working after a month and the replacement was just as faulty.", "negative"),
    Example("The left earbud keeps disconnecting, which makes phone calls almost impossible.", "negative"),
    Example(
        "Great value for the money; the vacuum picks up pet hair better than my old expensive one.",
        "positive",
    ),
    Example("The phone camera takes sharp, vibrant photos even in dim restaurant lighting.", "positive"),
    Example("The package showed up crushed and the glass lid inside was cracked.", "negative"),
    Example("The toaster burns one side of the bread and leaves the other side pale.", "negative"),
    Example("Support replied within an hour and sent a replacement part at no extra cost.", "positive"),
    Example("The sofa is firm but cozy, and the fabric has held up well against my kids.", "positive"),
    Example("These sneakers run a full size small and gave me blisters on the first day.", "negative"),
    Example(
        "The armchair cushions flattened within a month and the fabric started pilling badly.",
        "negative",
    ),
    Example("Battery life on this tablet is excellent, easily lasting two full days of use.", "positive"),
    Example("The nonstick pan cleans up with a quick rinse and heats evenly across the surface.", "positive"),
    Example("The speaker crackles at moderate volume and the bass sounds muddy.", "negative"),
    Example("Shipping took almost four weeks and the tracking number never updated.", "negative"),
    Example("These headphones deliver rich bass and crisp highs without any distortion.", "positive"),
    Example(
        "I have worn these boots through a whole winter and they are still completely waterproof.",
        "positive",
    ),
    Example("The coffee maker leaks water all over the counter every single morning.", "negative"),
    Example("The desk arrived with missing screws and a deep scratch across the top.", "negative"),
    Example("Setup took five minutes and the smart watch synced with my phone immediately.", "positive"),
    Example("The mattress is supportive and I have been sleeping better since the first night.", "positive"),
    Example("The touchscreen freezes constantly and the phone restarts itself for no reason.", "negative"),
    Example(
        "The soles of these sandals started peeling off after a single afternoon at the beach.",
        "negative",
    ),
    Example("Sturdy, well made and easy to clean, this cutting board is exactly what I wanted.", "positive"),
    Example("The refund was processed quickly and the seller was polite throughout.", "positive"),
    Example("I returned the headphones because the padding cracked and the headband snapped.", "negative"),
    Example("The blender motor smells like burning plastic after less than a minute of use.", "negative"),
    Example(
        "The laptop is fast and quiet, and the keyboard feels great for long typing sessions.",
        "positive",
    ),
    Example("These wireless earbuds pair instantly and the case holds plenty of extra charges.", "positive"),
    Example("The color looks nothing like the photos and the material feels cheap and thin.", "negative"),
    Example("The instructions were missing and the parts did not line up properly.", "negative"),
    Example("The dining table looks elegant and feels solid; guests always compliment it.", "positive"),
    Example("The air fryer makes crispy fries in minutes and is surprisingly easy to clean.", "positive"),
    Example("After the latest update the phone overheats whenever I open the camera app.", "negative"),
    Example("The zipper on the backpack broke the first time I filled it completely.", "negative"),
    Example("The leather on these shoes softened nicely and they now fit like a glove.", "positive"),
    Example("This office chair has excellent lumbar support and my back pain has disappeared.", "positive"),
    Example("The mixer is so loud that I have to leave the kitchen while it runs.", "negative"),
    Example("I was charged twice for the same order and the store refused to help.", "negative"),
    Example("The microwave heats food evenly and the controls are simple and intuitive.", "positive"),
    Example("Arrived well packaged, works perfectly and looks even better than the pictures.", "positive"),
    Example("The mattress started sagging in the middle after just three months.", "negative"),
    Example("The charging port is loose, so the cable falls out at the slightest touch.", "negative"),
    Example("The knife set is razor sharp, well balanced and came with a handsome wooden block.", "positive"),
    Example("My new phone charges from empty to full in under an hour, which is fantastic.", "positive"),
    Example("The headphones pinch my ears and become painful after twenty minutes.", "negative"),
    Example("The handle of the frying pan came loose and now it rattles dangerously.", "negative"),
    Example("These slippers are soft, warm and have a grippy sole that works on tile floors.", "positive"),
    Example("The courier was friendly and carried the heavy dresser all the way upstairs.", "positive"),
    Example("The lamp flickers constantly and the switch feels flimsy and cheap.", "negative"),
    Example("Battery swelling forced me to stop using the tablet after only six months.", "negative"),
    Example("The bluetooth speaker is small but fills the whole room with clear sound.", "positive"),
    Example(
        "Hands down the best rice cooker I have owned; the rice comes out perfect every time.",
        "positive",
    ),
    Example(
        "The warranty claim was rejected for no clear reason, so I will not buy this brand again.",
        "negative",
    ),
    Example("The shoelaces frayed within days and the insole slides around inside the shoe.", "negative"),
    Example("The bed frame went together easily and does not squeak at all.", "positive"),
    Example(
        "This phone case is slim yet protective, and it survived several drops onto concrete.",
        "positive",
    ),
    Example("The food processor blade dulled quickly and now it just mashes vegetables.", "negative"),
    Example("The bookcase shelves bow under the weight of a few paperback novels.", "negative"),
    Example("The hiking boots gave great ankle support on rocky trails with no break-in period.", "positive"),
    Example("The cordless drill holds a charge for ages and has plenty of power for big jobs.", "positive"),
    Example("The microphone on these headphones makes my voice sound distant and muffled.", "negative"),
    Example(
        "The screen protector came with bubbles that would not smooth out no matter what I tried.",
        "negative",
    ),
    Example("Quick delivery, accurate description and a genuinely useful kitchen scale.", "positive"),
    Example("The recliner is plush and comfortable, and the mechanism operates smoothly.", "positive"),
    Example("It worked fine for a week, then the display went completely black.", "negative"),
    Example("The return process was confusing and I had to pay for shipping myself.", "negative"),
    Example(
        "These earphones are a bargain; the sound rivals models that cost three times as much.",
        "positive",
    ),
    Example(
        "The store replaced my faulty charger without any questions, which I really appreciated.",
        "positive",
    ),
    Example("The waffle iron sticks badly even though the box promised a nonstick coating.", "negative"),
    Example("Overpriced, poorly made and already showing rust after a single wash.", "negative"),
    Example("Comfortable, stylish and durable, these sneakers are worth every penny.", "positive"),
)

# Invented news headlines labelled by section.
NEWS_TOPIC: tuple[Example, ...] = (
    Example("Underdog club clinches league title with dramatic stoppage-time winner", "sports"),
    Example("Regional bank reports record quarterly profit as lending demand surges", "business"),
    Example("Astronomers detect unusual radio bursts from a distant dwarf galaxy", "science"),
    Example("Coastal nations sign agreement to share fishing quotas in disputed waters", "world"),
    Example("Thousands evacuated as floods sweep through river towns in the north", "world"),
    Example("Researchers grow drought-resistant wheat in trial fields across dry plateau", "science"),
    Example("Electric scooter startup raises fresh funding to expand into ten new cities", "business"),
    Example("National rugby side names new captain ahead of autumn test series", "sports"),
    Example("Marathon runner breaks course record despite strong headwinds and heavy rain", "sports"),
    Example("Shares in furniture retailer slide after weaker than expected holiday sales", "business"),
    Example("New fossil discovery suggests early birds could glide long distances", "science"),
    Example("Parliament approves new constitution after months of heated debate", "world"),
    Example("Border crossing reopens as neighboring countries ease travel restrictions", "world"),
    Example("Engineers unveil battery cell that charges in minutes without overheating", "science"),
    Example("Central bank holds interest rates steady amid signs of cooling inflation", "business"),
    Example("Tennis qualifier stuns top seed in straight sets at indoor championship", "sports"),
    Example("Cycling team withdraws from stage race after crash injures three riders", "sports"),
    Example("Airline cuts routes and freezes hiring as fuel costs continue to climb", "business"),
    Example("Deep sea probe records previously unknown species near volcanic vents", "science"),
    Example("Peace talks resume in neutral capital after ceasefire holds for a month", "world"),
    Example("Island nation declares state of emergency after powerful cyclone makes landfall", "world"),
    Example("Study finds sleep helps the brain clear waste proteins more efficiently", "science"),
    Example("Supermarket chain agrees merger with rival in deal worth billions", "business"),
    Example("Basketball rookie scores forty points in stunning playoff debut", "sports"),
    Example("Swimmers set three records on opening night of continental championships", "sports"),
    Example("Coffee prices jump as poor harvests hit major growing regions", "business"),
    Example("Telescope captures clearest image yet of a planet forming around a young star", "science"),
    Example("Election observers report high turnout and peaceful voting across the country", "world"),
    Example("Aid convoys reach remote villages cut off by landslides in mountain region", "world"),
    Example("Chemists develop plastic that breaks down in seawater within weeks", "science"),
    Example("Tech firm announces layoffs while shifting focus to cloud software", "business"),
    Example("Goalkeeper saves two penalties as hosts advance to cup semifinal", "sports"),
    Example("Veteran jockey rides final race before retiring after three decades", "sports"),
    Example("Housing starts fall for fourth straight month as mortgage costs rise", "business"),
    Example("Genetic study traces origins of domesticated horses to ancient grasslands", "science"),
    Example("Foreign ministers meet to discuss refugee crisis at emergency summit", "world"),
    Example("Capital city brought to a standstill by strike over proposed pension reforms", "world"),
    Example("Mathematicians solve decades-old puzzle about packing spheres in high dimensions", "science"),
    Example("Car maker recalls thousands of vehicles over faulty brake sensors", "business"),
    Example("Cricket captain hits century to rescue side from early batting collapse", "sports"),
    Example("Hockey team extends winning streak to twelve games with overtime victory", "sports"),
    Example("Online retailer posts sharp rise in revenue driven by subscription growth", "business"),
    Example("Physicists measure the effect of gravity on antimatter with new precision", "science"),
    Example("Neighboring states agree to build joint railway linking their ports", "world"),
    Example("Protesters gather outside embassy demanding release of detained journalists", "world"),
    Example("Ice core samples reveal sudden climate shifts thousands of years ago", "science"),
    Example("Small businesses struggle as rents rise in downtown shopping districts", "business"),
    Example("Olympic committee confirms new host city for the upcoming winter games", "sports"),
    Example("Golfer sinks long putt on final hole to win playoff and first major title", "sports"),
    Example("Stock markets rally as manufacturing data beats analyst forecasts", "business"),
    Example("Robot arm learns to fold laundry after watching human demonstrations", "science"),
    Example("International envoy warns of famine risk in drought-stricken region", "world"),
    Example("Earthquake damages historic old town as rescue teams search for survivors", "world"),
    Example("Vaccine trial shows strong immune response in elderly volunteers", "science"),
    Example("Oil producer boosts output, sending crude prices to a six-month low", "business"),
    Example("Boxing champion retains belt with unanimous decision in hometown bout", "sports"),
    Example("Volleyball squad qualifies for global championship for the first time", "sports"),
    Example("Startup founders sell payments company to large bank in surprise deal", "business"),
    Example("Satellite data shows glaciers retreating faster than previously estimated", "science"),
    Example("Government announces new visa rules to attract skilled foreign workers", "world"),
    Example("Opposition leader calls for early elections after ruling coalition collapses", "world"),
    Example("Biologists discover bacteria that can digest common industrial pollutants", "science"),
    Example("Shipping company profits soar as container rates reach record highs", "business"),
    Example("Injury forces star striker to miss the remainder of the season", "sports"),
    Example("Local athletics club celebrates as teenage sprinter qualifies for national finals", "sports"),
    Example("Unemployment falls to lowest level in a decade, survey shows", "business"),
    Example("Lunar rover finds evidence of water ice in permanently shadowed crater", "science"),
    Example("Two nations restore diplomatic ties after years of frozen relations", "world"),
    Example("Wildfires force closure of major highway as heat wave grips southern provinces", "world"),
    Example("Quantum computer completes calculation that would take ordinary machines centuries", "science"),
    Example("Luxury brand opens flagship store as tourist spending recovers", "business"),
    Example("Rowing crew wins gold by a fraction of a second in thrilling finish", "sports"),
    Example("Football coach sacked after a string of heavy home defeats", "sports"),
    Example("Investors pour money into solar farms as energy subsidies expand", "business"),
    Example("Archaeologists uncover ancient temple buried beneath desert sand dunes", "science"),
    Example("Summit leaders pledge funding to rebuild schools in war-torn region", "world"),
    Example("Ferry disaster prompts calls for stricter safety checks across the region", "world"),
    Example("New microscope reveals the inner workings of living cells in real time", "science"),
    Example("Food delivery company turns first annual profit after cost cutting", "business"),
    Example("Ski racer claims first career victory on icy downhill course", "sports"),
)

# Short questions labelled by the kind of answer they expect.
QUESTION_TYPE: tuple[Example, ...] = (
    Example("Who invented the first practical telephone?", "person"),
    Example("Where is the tallest waterfall in the world?", "place"),
    Example("How many bones are in the adult human body?", "number"),
    Example("How tall is the highest mountain on Earth?", "number"),
    Example("In which country did the game of chess originate?", "place"),
    Example("Which scientist first described the laws of motion?", "person"),
    Example("Who wrote the novel that the new film is based on?", "person"),
    Example("Where do penguins live in the wild?", "place"),
    Example("What is the population of the capital city?", "number"),
    Example("How many players are on a soccer team?", "number"),
    Example("What is the capital city of that island nation?", "place"),
    Example("Can you name the composer of this symphony?", "person"),
    Example("Who was the first person to walk on the moon?", "person"),
    Example("Which continent has the largest desert?", "place"),
    Example("In what year did the first airplane fly?", "number"),
    Example("How much does a ticket to the concert cost?", "number"),
    Example("Where was the peace treaty signed?", "place"),
    Example("Which artist designed the cover of this album?", "person"),
    Example("Who is the current captain of the national football team?", "person"),
    Example("In what city will the next summer games be held?", "place"),
    Example("How far is the moon from the Earth?", "number"),
    Example("What percentage of the planet is covered by water?", "number"),
    Example("Where can I find the nearest train station?", "place"),
    Example("Whose idea was it to build the canal?", "person"),
    Example("Who discovered penicillin?", "person"),
    Example("Which river flows through the old capital?", "place"),
    Example("How many days does it take Mars to orbit the sun?", "number"),
    Example("How old was the oldest tree ever recorded?", "number"),
    Example("Where did the explorers set up their first camp?", "place"),
    Example("Which actor played the detective in the original series?", "person"),
    Example("Who founded the company that makes these cars?", "person"),
    Example("From which port did the ship depart?", "place"),
    Example("What is the boiling point of water in Fahrenheit?", "number"),
    Example("How many languages are spoken in the country?", "number"),
    Example("Which mountain range separates the two countries?", "place"),
    Example("Do you know who directed the movie we watched last night?", "person"),
    Example("Who sang the lead vocals on that song?", "person"),
    Example("Where are the headquarters of the company located?", "place"),
    Example("How long is the river from source to sea?", "number"),
    Example("What is the speed of sound in air?", "number"),
    Example("What town was the author born in?", "place"),
    Example("Which explorer first sailed around the southern cape?", "person"),
    Example("Who is responsible for approving the annual budget?", "person"),
    Example("Where does the marathon route finish?", "place"),
    Example("How many moons does Jupiter have?", "number"),
    Example("At what temperature does iron melt?", "number"),
    Example("Which ocean is the deepest?", "place"),
    Example("Which poet wrote the lines carved above the library door?", "person"),
    Example("Who was the architect behind the new concert hall?", "person"),
    Example("Where were the oldest cave paintings discovered?", "place"),
    Example("How many pages are in the first volume?", "number"),
    Example("What was the final score of the championship game?", "number"),
    Example("To which city did the museum move its collection?", "place"),
    Example("Who will be the keynote speaker at the conference?", "person"),
    Example("Which player scored the winning goal in the final?", "person"),
    Example("Where is the best place to see the northern lights?", "place"),
    Example("How many calories are in a slice of bread?", "number"),
    Example("By how much did sales grow last year?", "number"),
    Example("Which country produces the most coffee?", "place"),
    Example("Who translated this book into English?", "person"),
)

BUILTIN: dict[str, tuple[Example, ...]] = {
    "movie_sentiment": MOVIE_SENTIMENT,
    "product_sentiment": PRODUCT_SENTIMENT,
    "news_topic": NEWS_TOPIC,
    "question_type": QUESTION_TYPE,
}


def load(name: str) -> tuple[list[str], list[str]]:
    """Return ``(texts, labels)`` of a built-in dataset.

    Args:
        name: One of the keys of :data:`BUILTIN` (``"movie_sentiment"``,
            ``"product_sentiment"``, ``"news_topic"`` or ``"question_type"``).

    Returns:
        Two new lists of equal length: the texts and their labels, in the
        stored (label-interleaved) order.

    Raises:
        KeyError: If ``name`` is not a built-in dataset; the message lists the
            available names.
    """
    try:
        rows = BUILTIN[name]
    except KeyError:
        available = ", ".join(sorted(BUILTIN))
        raise KeyError(f"unknown dataset {name!r}; available: {available}") from None
    return [row.text for row in rows], [row.label for row in rows]
