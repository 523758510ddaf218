"""Procedural referring-video data in the MeViS layout (``flowrvs synth``).

Each video is a panning textured background with 2-5 flat-coloured shapes that move
(constant velocity, stop, turn, enter or leave the frame; on request, ``generate_video(...,
returns=p)``, leave and come back) and occlude each other.
Every sentence is built from a small regular grammar and singles out exactly the
objects it lists:

* appearance: ``the [small|large] [solid|striped|dotted] [<colour>] <shape|shape|object>``
* motion:     ``<np> that moves to the left``, ``<np> moving up``, ``<np> that stops``,
  ``<np> that turns``, ``<np> that enters``, ``<np> that leaves``, ``<np> that does not move``
* relation:   ``<np> above|below|left of|right of <unique np>``
* multi:      ``the two|three <adjectives> <plural noun>``

Modules, each one concept (import names from them):

``vocabulary``  attributes, motion clauses, relations and ``VOCABULARY``, the closed word list
``video``       ``SynthObject`` and ``SynthVideo``: what a generated video is
``render``      background, sprites and compositing into frames and visible masks
``scene``       objects, their motion and paths, motion tags
``grammar``     the expressions of a scene, and ``resolve``, which evaluates a sentence against a
                video with the same predicates, so the generator's claims can be checked
``generate``    ``generate_video`` (one video in memory, no disk) and its argument checks
``writer``      ``write_split``: ``<out_dir>/<split>/{JPEGImages/<video>/<frame>.jpg,
                meta_expressions.json, mask_dict.json}``, atomically; other splits are left alone
"""
